// ramjetctl: the operator's CLI. One view of every flow across the kernel
// datapath and the engine, and the controls that act on both halves. Talks to
// ramjetd over its admin socket; with ramjetd down, the kernel-side commands work
// from the maps it left pinned. The commands live in cmd_*.cc; docs/ramjetctl.md
// documents each, their JSON schemas (tools/ramjetctl/schemas/) and exit codes.
#include <CLI/CLI.hpp>
#include <cstdlib>
#include <iostream>

#include "admin/socket_path.h"
#include "commands.h"
#include "ramjet/settings.h"

namespace {

using namespace ramjet::ctl;

// Filter options shared by flows list, kill and top.
struct FilterArgs {
  std::string src, dst, port, proto, verdict, endpoint;

  void add_to(CLI::App* cmd) {
    cmd->add_option("--src", src, "Originator address or CIDR");
    cmd->add_option("--dst", dst, "Destination address or CIDR");
    cmd->add_option("--port", port, "Either side's port");
    cmd->add_option("--proto", proto, "tcp, udp, icmp, icmpv6 or a number");
    cmd->add_option("--verdict", verdict, "fastpath, escalate, drop, pass, ratelimit or engine");
    cmd->add_option("--endpoint", endpoint, "Endpoint name");
  }

  // Fills `f`; false (after saying why) on an invalid value.
  bool fill(ramjet::admin::FlowFilter& f) const {
    for (auto [field, value] : {std::pair{"src", &src},
                                {"dst", &dst},
                                {"port", &port},
                                {"proto", &proto},
                                {"verdict", &verdict},
                                {"endpoint", &endpoint}}) {
      if (value->empty()) continue;
      if (auto r = f.set(field, *value); !r.ok()) {
        std::string m = r.error().message;  // "invalid port ...": name the option
        if (m.rfind("invalid ", 0) == 0) m.insert(8, "--");
        std::cerr << "ramjetctl: " << m << "\n";
        return false;
      }
    }
    return true;
  }
};

std::optional<std::chrono::milliseconds> parse_duration(const std::string& text,
                                                        const char* option) {
  auto d = ramjet::settings::Codec<std::chrono::milliseconds>::parse_text(text);
  if (!d)
    std::cerr << "ramjetctl: invalid " << option << " \"" << text
              << "\" (expected e.g. 500ms, 5s, 2m, 1h or 1m30s)\n";
  return d;
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App cli{"ramjetctl: see and manage every flow of ramjetd, in the kernel and in the engine",
               "ramjetctl"};
  cli.require_subcommand(1);
  cli.set_version_flag("-V,--version", "ramjetctl " RAMJET_VERSION);
  cli.fallthrough();  // global options may also follow the command
  GlobalOptions g;
  // A daemon run without root put its socket under $XDG_RUNTIME_DIR: find it there too.
  const char* runtime_dir = std::getenv("XDG_RUNTIME_DIR");
  g.admin_socket = ramjet::admin::find_default_admin_socket(runtime_dir != nullptr ? runtime_dir : "");
  cli.add_option("--admin-socket", g.admin_socket, "The daemon's admin socket")
      ->envname("RAMJET_ADMIN_SOCKET")
      ->capture_default_str();
  cli.add_option("--pin-root", g.pin_root,
                 "Where ramjetd pins its maps (datapath.pin_root), for use without the daemon")
      ->envname("RAMJET_PIN_ROOT")
      ->capture_default_str();
  cli.add_option("--instance", g.instance, "The datapath instance (datapath.instance)")
      ->envname("RAMJET_INSTANCE")
      ->capture_default_str();
  cli.add_option("--config", g.names_config,
                 "ramjetd's config file: rule and endpoint names for the pinned-map view");
  cli.add_flag("--json", g.json, "JSON output (schemas in tools/ramjetctl/schemas)");

  auto* status = cli.add_subcommand("status", "The daemon: app, version, pid, workers, endpoints");
  auto* stats = cli.add_subcommand("stats", "Engine counters and datapath statistics");

  auto* flows = cli.add_subcommand("flows", "Flows across the kernel and the engine");
  flows->require_subcommand(1);
  FilterArgs list_filter, kill_filter, top_filter;
  std::string sort = "none", source = "auto";
  std::size_t limit = 0;
  auto* list = flows->add_subcommand("list", "List flows (streams; filters, --sort, --limit)");
  list_filter.add_to(list);
  list->add_option("--sort", sort, "none, id, bytes, packets, age, idle or rate")
      ->capture_default_str();
  list->add_option("--limit", limit, "At most this many flows (0: all)");
  list->add_option("--source", source, "auto (pinned maps, else the daemon's stream), pins or api")
      ->check(CLI::IsMember({"auto", "pins", "api"}))
      ->capture_default_str();
  ramjet::FlowId show_id = 0;
  auto* show = flows->add_subcommand("show", "One flow: kernel counters, engine state, hooks");
  show->add_option("ID", show_id, "The flow id")->required();
  std::string kill_id;
  auto* kill =
      flows->add_subcommand("kill", "Close the engine connection and delete the kernel entry");
  kill->add_option("ID", kill_id, "A flow id (or give filters)");
  kill_filter.add_to(kill);
  std::string interval = "1s";
  std::size_t iterations = 0, top_limit = 0;
  auto* top =
      flows->add_subcommand("top", "Live view by rate (a tty redraws; else blocks of lines)");
  top_filter.add_to(top);
  top->add_option("--interval", interval, "Time between refreshes")->capture_default_str();
  top->add_option("--iterations", iterations, "Stop after N refreshes (0: until Ctrl-C)");
  top->add_option("--limit", top_limit, "Rows (default: the terminal's height, or 20)");

  std::string block_cidr, block_for = "0";
  auto* block = cli.add_subcommand("block", "Drop a source prefix in XDP");
  block->add_option("CIDR", block_cidr, "Address or prefix")->required();
  block->add_option("--for", block_for, "How long (e.g. 30s, 5m; default: until unblocked)");
  std::string unblock_cidr;
  auto* unblock = cli.add_subcommand("unblock", "Remove a blocked prefix");
  unblock->add_option("CIDR", unblock_cidr, "The prefix as blocked")->required();
  auto* blocks = cli.add_subcommand("blocks", "Blocked prefixes");
  auto* blocks_list = blocks->add_subcommand("list", "List blocked prefixes (the default)");

  auto* rules = cli.add_subcommand("rules", "Datapath rules");
  rules->require_subcommand(1);
  auto* rules_list = rules->add_subcommand("list", "The rules in priority order");
  RuleSpec spec;
  std::size_t position = 0;
  auto* rules_add = rules->add_subcommand("add", "Add a rule (until the next reload or restart)");
  rules_add->add_option("NAME", spec.name, "Rule name")->required();
  rules_add->add_option("--action", spec.action, "fastpath, escalate, drop, pass or ratelimit")
      ->required();
  rules_add->add_option("--proto", spec.proto, "tcp, udp, icmp, icmpv6 or any");
  rules_add->add_option("--src", spec.src, "Source CIDR");
  rules_add->add_option("--dst", spec.dst, "Destination CIDR");
  rules_add->add_option("--dst-port", spec.dst_port, "Port or range (80, 8000-8100)");
  rules_add->add_option("--endpoint", spec.endpoint, "Endpoint for escalate");
  rules_add->add_option("--interface", spec.interface, "Ingress interface");
  rules_add->add_option("--rate-pps", spec.rate_pps, "ratelimit: packets per second per source");
  rules_add->add_option("--burst", spec.burst, "ratelimit: bucket depth");
  auto* pos_opt =
      rules_add->add_option("--position", position, "0-based priority slot (default: last)");
  std::string del_name;
  auto* rules_del = rules->add_subcommand("del", "Delete a rule by name");
  rules_del->add_option("NAME", del_name, "Rule name")->required();

  bool follow = false;
  auto* events = cli.add_subcommand("events", "Datapath and engine events");
  events->add_flag("-f,--follow", follow, "Keep streaming new events");

  auto* config = cli.add_subcommand("config", "Check or print configuration");
  config->require_subcommand(1);
  std::string check_file;
  auto* check = config->add_subcommand("check", "Validate a config file (exit 0 or 2)");
  check->add_option("FILE", check_file, "The YAML file")->required();
  auto* def = config->add_subcommand("default", "Print the documented default config");
  auto* reload = cli.add_subcommand("reload", "Re-read the config file (as SIGHUP)");
  auto* drain = cli.add_subcommand("drain", "Stop accepting, let connections finish, exit");

  try {
    cli.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    // "A subcommand is required" when the word given is not a command: say which.
    if (dynamic_cast<const CLI::RequiredError*>(&e) && !cli.remaining().empty()) {
      std::cerr << "ramjetctl: unknown command \"" << cli.remaining().front()
                << "\" (see ramjetctl --help)\n";
      return kExitUsage;
    }
    return cli.exit(e) == 0 ? kExitOk : kExitUsage;
  }

  Ctl ctl(g);
  if (*status) return cmd_status(ctl);
  if (*stats) return cmd_stats(ctl);
  if (*list) {
    FlowQuery q;
    if (!list_filter.fill(q.filter)) return kExitUsage;
    auto s = ramjet::admin::flow_sort_from_name(sort);
    if (!s)
      return ctl.fail(kExitUsage, "invalid --sort \"" + sort +
                                      "\" (none, id, bytes, packets, age, idle or rate)");
    q.sort = *s;
    q.limit = limit;
    q.source = source;
    return cmd_flows_list(ctl, q);
  }
  if (*show) return cmd_flows_show(ctl, show_id);
  if (*kill) {
    ramjet::admin::FlowFilter f;
    if (!kill_id.empty())
      if (auto r = f.set("id", kill_id); !r.ok()) return ctl.fail(kExitUsage, r.error().message);
    if (!kill_filter.fill(f)) return kExitUsage;
    return cmd_flows_kill(ctl, f);
  }
  if (*top) {
    TopOptions o;
    if (!top_filter.fill(o.query.filter)) return kExitUsage;
    auto d = parse_duration(interval, "--interval");
    if (!d) return kExitUsage;
    if (d->count() < 100) return ctl.fail(kExitUsage, "--interval must be at least 100ms");
    o.interval = *d;
    o.iterations = iterations;
    o.query.limit = top_limit;
    return cmd_flows_top(ctl, o);
  }
  if (*block || *unblock) {
    auto prefix = ramjet::Cidr::parse(*block ? block_cidr : unblock_cidr);
    if (!prefix)
      return ctl.fail(kExitUsage, "invalid CIDR \"" + (*block ? block_cidr : unblock_cidr) +
                                      "\" (expected e.g. 10.0.0.1, 10.0.0.0/8, fd00::/8)");
    if (*unblock) return cmd_unblock(ctl, *prefix);
    auto d = parse_duration(block_for, "--for");
    if (!d) return kExitUsage;
    return cmd_block(ctl, *prefix, *d);
  }
  if (*blocks || *blocks_list) return cmd_blocks_list(ctl);
  if (*rules_list) return cmd_rules_list(ctl);
  if (*rules_add) {
    if (pos_opt->count()) spec.position = position;
    return cmd_rules_add(ctl, spec);
  }
  if (*rules_del) return cmd_rules_del(ctl, del_name);
  if (*events) return cmd_events(ctl, follow);
  if (*check) return cmd_config_check(ctl, check_file);
  if (*def) return cmd_config_default(ctl);
  if (*reload) return cmd_reload(ctl);
  if (*drain) return cmd_drain(ctl);
  return kExitUsage;
}
