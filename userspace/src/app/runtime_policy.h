// The datapath rules as they run: loaded from the config file, replaced on reload
// (SIGHUP, POST /v1/reload), edited at runtime through the admin API (POST and
// DELETE /v1/rules). Every change is checked as the loader checks the file, then
// swapped into the kernel in place (Datapath::apply_policy: no detach, flows kept).
// Runtime edits last until the next reload or restart.
//
// Thread-safe: the signal thread reloads while the admin thread edits.
#pragma once

#include <functional>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include "admin/flow_view.h"
#include "ramjet/config/config.h"
#include "ramjet/result.h"

namespace ramjet::datapath {
class Datapath;
}

namespace ramjet::app {

// What a reload did, key by key (config::changed_keys paths).
struct ReloadReport {
  std::size_t rules = 0;                      // datapath rules running now
  std::vector<std::string> applied;           // changed keys in effect now
  std::vector<std::string> restart_required;  // changed keys that run on as before until a restart
};

class RuntimePolicy {
 public:
  RuntimePolicy(std::string config_path, const config::AppSchema& schema,
                const config::Config& running, datapath::Datapath* dp)
      : path_(std::move(config_path)), schema_(schema), config_(running), dp_(dp) {}

  const std::string& config_path() const { return path_; }

  // The engine's part of a reload: checks what `next` asks of the running engine and returns
  // what applies it (run once the whole reload is known to succeed).
  using EnginePrepare = std::function<Result<std::function<void()>>(const config::Config& next)>;

  // Re-reads the config file, applies what changes at runtime (the datapath rules and
  // default action, logging.level, and through `engine` the running endpoints' auth with
  // their htpasswd files read again and the egress settings but for
  // happy_eyeballs.resolution_delay) and names every other changed key as needing a
  // restart. On an error nothing changes.
  Result<ReloadReport> reload(const EnginePrepare& engine = {});
  // The logging settings running now (a reload may change the level).
  config::LoggingSettings logging() const;
  // Inserts `rule` at `position` (0 = first; default: last). Error::config for a
  // rule the loader would refuse (the message names the key).
  Result<void> add(config::DatapathRule rule, std::optional<std::size_t> position);
  // false when no rule has that name.
  Result<bool> remove(const std::string& name);

  bool runtime_edits() const;
  // Endpoint and rule ids -> names, for the views of kernel state.
  admin::NameTable names() const;

 private:
  Result<void> apply(const config::Config& next);

  std::string path_;
  const config::AppSchema& schema_;
  mutable std::mutex mu_;
  config::Config config_;  // guarded by mu_: what runs (rules included)
  bool edited_ = false;    // guarded by mu_
  datapath::Datapath* dp_;
};

}  // namespace ramjet::app
