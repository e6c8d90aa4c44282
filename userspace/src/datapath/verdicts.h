// Applies a hook's KernelVerdict to the datapath (hooks/include/ramjet/hooks/kernel.h)
// and records it in the hook trace as "<hook>.kernel".
#pragma once

#include <optional>

#include "ramjet/hooks/connection.h"
#include "ramjet/hooks/kernel.h"

namespace ramjet::datapath {

class Datapath;

// `dp` may be null (datapath off): the verdict is then logged and skipped.
void apply_kernel_verdict(Datapath* dp, const ConnectionInfo& info,
                          const std::optional<KernelVerdict>& verdict, const char* hook);

}  // namespace ramjet::datapath
