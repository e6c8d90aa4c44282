// IngressHook: the first decision about a downstream connection, and its epilogue.
#pragma once

#include <optional>
#include <string>
#include <utility>

#include "ramjet/hooks/connection.h"
#include "ramjet/hooks/kernel.h"
#include "ramjet/task.h"

namespace ramjet {

struct IngressDecision {
  enum class Action : std::uint8_t { kAllow, kBlock };
  Action action = Action::kAllow;
  std::string reason;  // logged and traced when blocking
  std::optional<KernelVerdict> kernel;  // also act in the datapath (see kernel.h)

  static IngressDecision allow() { return {}; }
  static IngressDecision block(std::string why) { return {Action::kBlock, std::move(why), {}}; }
  IngressDecision with_kernel(KernelVerdict k) && {
    kernel = k;
    return std::move(*this);
  }
};

// Ctx is the application's IngressConnectionContext: one per connection,
// default-constructed by the framework, handed to every hook for that connection.
template <typename Ctx>
class IngressHook {
 public:
  virtual ~IngressHook() = default;

  // Runs once per accepted connection, before anything is read from it.
  virtual Task<IngressDecision> handle_connection(const ConnectionInfo& /*conn*/, Ctx& /*ctx*/) {
    co_return IngressDecision::allow();
  }

  // Runs once when the connection is gone, whatever ended it.
  virtual void handle_connection_close(const ConnectionInfo& /*conn*/,
                                       const ConnectionStats& /*stats*/, Ctx& /*ctx*/) {}
};

}  // namespace ramjet
