// YAML text -> settings::Node tree, for the parts of the config code that read documents
// without loading a Config (the reload diff). yaml-cpp stays inside loader.cc.
#pragma once

#include <string_view>

#include "ramjet/result.h"
#include "ramjet/settings.h"

namespace ramjet::config {

// The document as a tree; errors name `filename`, line and column. Never throws.
Result<settings::Node> parse_tree(std::string_view yaml, std::string_view filename);

}  // namespace ramjet::config
