// ramjetctl's commands. Each returns the process exit code (exit_codes below) and
// prints its own output: a table or lines for people, JSON with --json (every JSON
// shape has a schema in tools/ramjetctl/schemas/). Errors go to stderr as
// "ramjetctl: <what is wrong and what to do>".
#pragma once

#include <chrono>
#include <cstdint>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <vector>

#include "admin/admin_client.h"
#include "admin/flow_view.h"
#include "kernel_view.h"
#include "ramjet/result.h"

namespace ramjet::ctl {

using admin::AdminClient;
using admin::AdminReply;
using admin::daemon_not_running;
using admin::error_text;
using admin::permission_denied;

// Documented in docs/ramjetctl.md and the README.
inline constexpr int kExitOk = 0;
inline constexpr int kExitError = 1;       // ramjetd down (for a command that needs it) or failed
inline constexpr int kExitUsage = 2;       // bad command line, invalid config file
inline constexpr int kExitNotFound = 3;    // no such flow, rule or block
inline constexpr int kExitPermission = 4;  // insufficient privileges (the message names them)

struct GlobalOptions {
  std::string admin_socket = "/run/ramjet/admin.sock";
  std::string pin_root = "/sys/fs/bpf/ramjet";
  std::string instance = "default";
  std::string names_config;  // --config: names for the pinned-map view
  bool json = false;
};

// What the commands share: the options, the admin client, and where the kernel
// half is read from when the daemon is down.
class Ctl {
 public:
  explicit Ctl(GlobalOptions options)
      : options_(std::move(options)), admin_(options_.admin_socket) {}

  const GlobalOptions& options() const { return options_; }
  bool json() const { return options_.json; }
  AdminClient& admin() { return admin_; }

  // Prints "ramjetctl: <message>" and returns the exit code `e` calls for.
  int fail(const Error& e) const;
  int fail(int code, const std::string& message) const;
  // Prints a note on stderr (never mixed into --json output).
  void note(const std::string& message) const;

  // A request whose answer must be 2xx JSON; errors are printed and map to exit
  // codes: 404 -> not found, 403 -> permission, 400 -> usage, else error. With
  // quiet_if_down, a daemon that is not running is left to the caller (not_running).
  struct Answer {
    int exit = kExitOk;
    bool not_running = false;
    nlohmann::json body;
  };
  Answer call(std::string_view method, std::string_view target, const nlohmann::json& body = {},
              bool quiet_if_down = false);

  // The daemon's datapath status (GET /v1/datapath), or the error that prevented it.
  Result<nlohmann::json> daemon_datapath();
  // The pinned maps of --pin-root/--instance, with names from --config.
  Result<KernelView> kernel_view(const std::string& pin_dir = {});
  // Ids -> names from the daemon (GET /v1/endpoints, GET /v1/rules).
  admin::NameTable daemon_names();

 private:
  GlobalOptions options_;
  AdminClient admin_;
};

int cmd_status(Ctl& ctl);
int cmd_stats(Ctl& ctl);
int cmd_config_check(Ctl& ctl, const std::string& file);
int cmd_config_default(Ctl& ctl);
int cmd_reload(Ctl& ctl);
int cmd_drain(Ctl& ctl);
int cmd_events(Ctl& ctl, bool follow);

struct FlowQuery {
  admin::FlowFilter filter;
  admin::FlowSort sort = admin::FlowSort::kNone;
  std::size_t limit = 0;        // 0: all
  std::string source = "auto";  // auto | api | pins
};
int cmd_flows_list(Ctl& ctl, const FlowQuery& q);
int cmd_flows_show(Ctl& ctl, FlowId id);
int cmd_flows_kill(Ctl& ctl, const admin::FlowFilter& filter);
struct TopOptions {
  FlowQuery query;
  std::chrono::milliseconds interval{1000};
  std::size_t iterations = 0;  // 0: until interrupted
};
int cmd_flows_top(Ctl& ctl, const TopOptions& o);

int cmd_block(Ctl& ctl, const Cidr& prefix, std::chrono::milliseconds duration);
int cmd_unblock(Ctl& ctl, const Cidr& prefix);
int cmd_blocks_list(Ctl& ctl);

struct RuleSpec {
  std::string name;
  std::string action;
  std::string proto, src, dst, dst_port, endpoint, interface;
  std::uint32_t rate_pps = 0, burst = 0;
  std::optional<std::size_t> position;  // 0-based; default: last
};
int cmd_rules_list(Ctl& ctl);
int cmd_rules_add(Ctl& ctl, const RuleSpec& rule);
int cmd_rules_del(Ctl& ctl, const std::string& name);

}  // namespace ramjet::ctl
