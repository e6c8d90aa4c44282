// Kernel verdicts: a hook decision may reach into the eBPF datapath, so that later
// packets of the same kind never leave the kernel.
//
//   co_return IngressDecision::block("scanner").with_kernel(
//       KernelVerdict::block_source(std::chrono::seconds(30)));
//
// block_source: drop everything from the client's address (or `prefix`) in XDP
//   for `duration`. fastpath_class: forward later connections from this client to
//   this original destination address and port in the kernel for `duration`,
//   without the engine. Ignored (logged once per connection) when the datapath is
//   off. Entries expire on their own; `ramjetctl` can list and remove them.
#pragma once

#include <chrono>
#include <optional>

#include "ramjet/net.h"

namespace ramjet {

struct KernelVerdict {
  enum class Kind : std::uint8_t { kBlockSource, kFastpathClass };
  Kind kind = Kind::kBlockSource;
  std::optional<Cidr> prefix;  // kBlockSource: nullopt = the client's address
  std::chrono::seconds duration{60};

  static KernelVerdict block_source(std::chrono::seconds d, std::optional<Cidr> p = std::nullopt) {
    return {Kind::kBlockSource, p, d};
  }
  static KernelVerdict fastpath_class(std::chrono::seconds d) {
    return {Kind::kFastpathClass, std::nullopt, d};
  }
};

}  // namespace ramjet
