// status | stats | events | reload | drain | config check|default.
#include <csignal>
#include <filesystem>
#include <iostream>

#include "commands.h"
#include "datapath/json.h"
#include "ramjet/config/config.h"
#include "ramjet/hooks/app.h"
#include "table.h"

namespace ramjet::ctl {

namespace {

ramjet::config::AppSchema core_schema() {
  return {"ramjetd", ramjet::settings::ErasedStruct::of<ramjet::NoSettings>(),
          ramjet::settings::ErasedStruct::of<ramjet::NoSettings>()};
}

std::string text(const nlohmann::json& j) {
  return j.is_string() ? j.get<std::string>() : j.dump();
}

}  // namespace

int cmd_status(Ctl& ctl) {
  auto a = ctl.call("GET", "/v1/status");
  if (a.not_running) {
    std::string pins = ctl.options().pin_root + "/" + ctl.options().instance;
    std::error_code ec;
    if (std::filesystem::exists(pins + "/flows", ec))
      ctl.note("its datapath is still attached: pinned maps in " + pins +
               " (flows, block and stats work from there)");
  }
  if (a.exit != kExitOk) return a.exit;
  const auto& j = a.body;
  if (ctl.json()) {
    std::cout << j.dump(2) << "\n";
    return kExitOk;
  }
  std::cout << text(j["app"]) << " " << text(j["version"]) << "  pid " << j["pid"] << "  workers "
            << j["workers"] << "\n";
  AutoTable t({{"ENDPOINT"}, {"LISTEN"}});
  for (auto& [name, addr] : j["endpoints"].items()) t.add({name, text(addr)});
  std::cout << t.render();
  return kExitOk;
}

int cmd_stats(Ctl& ctl) {
  nlohmann::json out = {{"engine_running", false}, {"counters", nullptr}, {"datapath", nullptr}};
  auto a = ctl.call("GET", "/v1/stats", {}, /*quiet_if_down=*/true);
  if (!a.not_running) {
    if (a.exit != kExitOk) return a.exit;
    out["engine_running"] = true;
    out["counters"] = a.body.value("counters", nlohmann::json::object());
    auto dp = ctl.daemon_datapath();
    if (dp.ok() && dp->value("enabled", false)) {
      nlohmann::json stats = nlohmann::json::object();
      for (auto& [name, v] : (*dp)["stats"].items()) stats[name] = v;
      out["datapath"] = {{"source", "daemon"},
                         {"pin_dir", dp->value("pin_dir", "")},
                         {"interfaces", dp->value("interfaces", nlohmann::json::array())},
                         {"stats", stats},
                         {"fallbacks", dp->value("fallbacks", nlohmann::json::array())}};
    }
  } else {
    auto kv = ctl.kernel_view();
    if (!kv.ok()) return ctl.fail(kv.error());
    auto stats = kv->maps().stats();
    if (!stats.ok()) {
      // Neither half is there: say both.
      ctl.note("ramjetd is not running (nothing listens on " + ctl.admin().socket_path() + ")");
      return ctl.fail(stats.error());
    }
    ctl.note(kv->note());
    nlohmann::json s = nlohmann::json::object();
    for (const auto& st : *stats)
      s[std::string(st.name)] = {{"packets", st.packets}, {"bytes", st.bytes}};
    auto counts = kv->maps().fallback_counts();
    if (!counts.ok()) return ctl.fail(counts.error());
    // Without the daemon only rule ids are known (names live in its config).
    auto fallbacks = datapath::fallbacks_json(*counts, [](std::uint32_t) { return std::string(); });
    out["datapath"] = {
        {"source", "pins"}, {"pin_dir", kv->pin_dir()}, {"stats", s}, {"fallbacks", fallbacks}};
  }
  if (ctl.json()) {
    std::cout << out.dump(2) << "\n";
    return kExitOk;
  }
  if (out["counters"].is_object()) {
    std::cout << "engine\n";
    for (auto& [name, value] : out["counters"].items())
      std::cout << "  " << name << std::string(name.size() < 26 ? 26 - name.size() : 1, ' ')
                << value << "\n";
  } else {
    std::cout << "engine\n  (ramjetd is not running)\n";
  }
  if (out["datapath"].is_object()) {
    std::cout << "datapath (" << text(out["datapath"]["pin_dir"]) << ")\n";
    const auto& ifs = out["datapath"].value("interfaces", nlohmann::json::array());
    if (!ifs.empty()) {
      // Which hook runs each interface's fast path, and why (datapath.fastpath_hook).
      AutoTable h({{"  INTERFACE"}, {"IFINDEX", 0, true}, {"HOOK"}, {"XDP"}, {"WHY"}});
      for (const auto& i : ifs)
        h.add({"  " + i.value("name", ""), std::to_string(i.value("ifindex", 0u)),
               i.value("fastpath_hook", ""),
               i["xdp_mode"].is_string() ? i["xdp_mode"].get<std::string>() : "-",
               i.value("fastpath_hook_reason", "")});
      std::cout << h.render();
    }
    AutoTable t({{"  STAT"}, {"PACKETS", 0, true}, {"BYTES", 0, true}});
    for (auto& [name, v] : out["datapath"]["stats"].items())
      if (v.value("packets", 0ull) || v.value("bytes", 0ull))
        t.add({"  " + name, std::to_string(v.value("packets", 0ull)),
               human_bytes(v.value("bytes", 0ull))});
    std::cout << (t.empty() ? std::string("  (every counter is 0)\n") : t.render());
    const auto& fallbacks = out["datapath"]["fallbacks"];
    if (fallbacks.is_array() && !fallbacks.empty()) {
      std::cout << "engine-unavailable fallbacks (new flows)\n";
      AutoTable f({{"  RULE"}, {"VERDICT"}, {"CAUSE"}, {"FLOWS", 0, true}});
      for (const auto& c : fallbacks)
        f.add({"  " + (c["rule"].is_string() ? c["rule"].get<std::string>()
                                             : "#" + std::to_string(c.value("rule_id", 0u))),
               c.value("verdict", ""), c.value("cause", ""),
               std::to_string(c.value("flows", 0ull))});
      std::cout << f.render();
    }
  }
  return kExitOk;
}

int cmd_config_check(Ctl&, const std::string& file) {
  auto c = ramjet::config::load_file(file, core_schema());
  if (!c.ok()) {
    std::cerr << c.error().message << "\n";
    return kExitUsage;
  }
  std::cout << file << ": ok\n";
  return kExitOk;
}

int cmd_config_default(Ctl&) {
  std::cout << ramjet::config::default_config_yaml(core_schema());
  return kExitOk;
}

int cmd_reload(Ctl& ctl) {
  auto a = ctl.call("POST", "/v1/reload");
  if (a.exit != kExitOk) return a.exit;
  if (ctl.json())
    std::cout << a.body.dump() << "\n";
  else {
    std::cout << "reloaded " << text(a.body.value("config", nlohmann::json(""))) << ": "
              << a.body.value("rules", 0) << " datapath rules\n";
    for (const auto& key : a.body.value("applied", nlohmann::json::array()))
      std::cout << "applied: " << text(key) << "\n";
    for (const auto& key : a.body.value("restart_required", nlohmann::json::array()))
      std::cout << "needs a restart: " << text(key) << "\n";
  }
  return kExitOk;
}

int cmd_drain(Ctl& ctl) {
  auto a = ctl.call("POST", "/v1/drain");
  if (a.exit != kExitOk) return a.exit;
  if (ctl.json())
    std::cout << a.body.dump() << "\n";
  else
    std::cout << "draining: new connections are refused, open ones have "
              << human_duration(a.body.value("deadline_ms", 0ull)) << " to finish\n";
  return kExitOk;
}

namespace {

std::string event_line(const nlohmann::json& e) {
  std::string type = text(e.value("type", nlohmann::json("?")));
  std::string out = text(e.value("time", nlohmann::json(""))) + "  " + type;
  out += std::string(type.size() < 14 ? 14 - type.size() : 1, ' ');
  if (e.contains("flow_id") && !e["flow_id"].is_null()) out += "flow " + text(e["flow_id"]) + "  ";
  for (const char* k : {"proto", "src", "dst", "verdict", "reason", "endpoint", "rule"})
    if (e.contains(k) && !e[k].is_null()) out += std::string(k) + "=" + text(e[k]) + " ";
  for (const char* k :
       {"close_reason", "bytes_from_client", "bytes_to_client", "packet_len", "fallback", "cause"})
    if (e.contains(k) && !e[k].is_null()) out += std::string(k) + "=" + text(e[k]) + " ";
  while (!out.empty() && out.back() == ' ') out.pop_back();
  return out;
}

}  // namespace

int cmd_events(Ctl& ctl, bool follow) {
  std::string target = follow ? "/v1/events?follow=1" : "/v1/events";
  std::string error_body;
  std::signal(SIGPIPE, SIG_DFL);  // `ramjetctl events --follow | head` ends quietly
  auto status = ctl.admin().stream_lines(
      "GET", target,
      [&](std::string_view line) {
        if (line.empty()) return true;
        if (ctl.json()) {
          std::cout << line << "\n" << std::flush;
          return true;
        }
        auto j = nlohmann::json::parse(line, nullptr, false);
        std::cout << (j.is_object() ? event_line(j) : std::string(line)) << "\n" << std::flush;
        return true;
      },
      &error_body);
  if (!status.ok()) return ctl.fail(status.error());
  if (*status != 200) {
    AdminReply r{*status, error_body};
    return ctl.fail(*status == 404 ? kExitNotFound : kExitError, error_text(r));
  }
  return kExitOk;
}

}  // namespace ramjet::ctl
