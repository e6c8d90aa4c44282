// Checks that span several keys (unique endpoint names, listen conflicts, ...), run after
// every key parsed on its own. Private to the loader.
#pragma once

#include "ramjet/config/config.h"
#include "ramjet/settings.h"

namespace ramjet::config {

// Adds a diagnostic to `ctx` for each problem, pointing at the offending node of `root`
// (the document `config` was parsed from).
void validate(const Config& config, const settings::Node& root, settings::ParseContext& ctx);
// The datapath checks alone (for rules changed at runtime through the admin API).
void validate_datapath_only(const Config& config, const settings::Node& root,
                            settings::ParseContext& ctx);

}  // namespace ramjet::config
