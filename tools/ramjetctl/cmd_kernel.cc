// block | unblock | blocks list | rules list|add|del: the kernel's policy, through
// the daemon when it runs (it owns the denylist count and the rule compiler),
// else straight in the pinned maps (block, unblock and the listings).
#include <iostream>

#include "admin/policy_view.h"
#include "commands.h"
#include "table.h"

namespace ramjet::ctl {

namespace {

std::string expires_text(const nlohmann::json& b) {
  if (b["expires_in_ms"].is_null()) return "never";
  auto ms = b["expires_in_ms"].get<std::uint64_t>();
  return ms == 0 ? "expired" : "in " + human_duration(ms);
}

// Runs `with_daemon` when ramjetd answers, else `with_pins` on the pinned maps
// (after the note). Permission problems end the command either way.
template <typename D, typename P>
int daemon_or_pins(Ctl& ctl, D with_daemon, P with_pins) {
  auto dp = ctl.daemon_datapath();
  if (dp.ok()) {
    if (!dp->value("enabled", false))
      return ctl.fail(kExitError, "the datapath is not enabled in the running ramjetd");
    return with_daemon();
  }
  if (!daemon_not_running(dp.error())) return ctl.fail(dp.error());
  auto kv = ctl.kernel_view();
  if (!kv.ok()) return ctl.fail(kv.error());
  int rc = with_pins(*kv);
  if (rc == kExitOk) ctl.note(kv->note());
  return rc;
}

}  // namespace

int cmd_block(Ctl& ctl, const Cidr& prefix, std::chrono::milliseconds duration) {
  nlohmann::json result;
  int rc = daemon_or_pins(
      ctl,
      [&] {
        nlohmann::json body = {{"prefix", prefix.to_string()}, {"duration_ms", duration.count()}};
        auto a = ctl.call("POST", "/v1/blocks", body);
        result = std::move(a.body);
        return a.exit;
      },
      [&](KernelView& kv) {
        auto r = kv.maps().block(prefix, duration, datapath::kBlockTagOperator);
        if (!r.ok()) return ctl.fail(r.error());
        auto now = datapath::monotonic_now_ns();
        datapath::BlockEntry b{
            prefix, duration.count() ? now + std::uint64_t(duration.count()) * 1'000'000 : 0,
            datapath::kBlockTagOperator};
        result = admin::block_json(b, now);
        return kExitOk;
      });
  if (rc != kExitOk) return rc;
  if (ctl.json())
    std::cout << result.dump() << "\n";
  else
    std::cout << "blocked " << result.value("prefix", "") << " (expires " << expires_text(result)
              << ")\n";
  return kExitOk;
}

int cmd_unblock(Ctl& ctl, const Cidr& prefix) {
  int rc = daemon_or_pins(
      ctl,
      [&] {
        return ctl.call("DELETE", "/v1/blocks/" + admin::url_encode(prefix.to_string())).exit;
      },
      [&](KernelView& kv) {
        auto r = kv.maps().unblock(prefix);
        if (!r.ok()) return ctl.fail(r.error());
        if (!*r)
          return ctl.fail(kExitNotFound, prefix.to_string() + " is not blocked (pinned maps in " +
                                             kv.pin_dir() + ")");
        return kExitOk;
      });
  if (rc != kExitOk) return rc;
  if (ctl.json())
    std::cout << nlohmann::json{{"prefix", prefix.to_string()}, {"removed", true}}.dump() << "\n";
  else
    std::cout << "unblocked " << prefix.to_string() << "\n";
  return kExitOk;
}

int cmd_blocks_list(Ctl& ctl) {
  nlohmann::json list;
  int rc = daemon_or_pins(
      ctl,
      [&] {
        auto a = ctl.call("GET", "/v1/blocks");
        list = std::move(a.body);
        return a.exit;
      },
      [&](KernelView& kv) {
        auto blocks = kv.maps().blocks();
        if (!blocks.ok()) return ctl.fail(blocks.error());
        auto now = datapath::monotonic_now_ns();
        list = nlohmann::json::array();
        for (const auto& b : *blocks) list.push_back(admin::block_json(b, now));
        return kExitOk;
      });
  if (rc != kExitOk) return rc;
  if (ctl.json()) {
    std::cout << list.dump(2) << "\n";
    return kExitOk;
  }
  AutoTable t({{"PREFIX"}, {"EXPIRES"}, {"SET BY"}});
  for (const auto& b : list) t.add({b["prefix"].get<std::string>(), expires_text(b), b["set_by"]});
  std::cout << t.render();
  return kExitOk;
}

// --- rules ----------------------------------------------------------------------

namespace {

std::string cell(const nlohmann::json& r, const char* key) {
  if (!r.contains(key) || r[key].is_null()) return "-";
  return r[key].is_string() ? r[key].get<std::string>() : r[key].dump();
}

}  // namespace

int cmd_rules_list(Ctl& ctl) {
  nlohmann::json listing;
  auto dp = ctl.daemon_datapath();
  if (dp.ok()) {
    auto a = ctl.call("GET", "/v1/rules");
    if (a.exit != kExitOk) return a.exit;
    listing = std::move(a.body);
  } else {
    if (!daemon_not_running(dp.error())) return ctl.fail(dp.error());
    auto kv = ctl.kernel_view();
    if (!kv.ok()) return ctl.fail(kv.error());
    auto rules = kv->maps().rules();
    if (!rules.ok()) return ctl.fail(rules.error());
    auto rt = kv->maps().runtime();
    if (!rt.ok()) return ctl.fail(rt.error());
    ctl.note(kv->note());
    listing = admin::rules_listing(*rules, *rt, kv->names(), "pins");
  }
  if (ctl.json()) {
    std::cout << listing.dump(2) << "\n";
    return kExitOk;
  }
  AutoTable t({{"#", 0, true},
               {"NAME"},
               {"ACTION"},
               {"PROTO"},
               {"SRC"},
               {"DST"},
               {"PORT"},
               {"INTERFACE"},
               {"ENDPOINT"},
               {"RATE"},
               {"RULE ID", 0, true}});
  for (const auto& r : listing["rules"]) {
    std::string rate =
        r["rate_pps"].is_null() ? "-" : cell(r, "rate_pps") + "/s burst " + cell(r, "burst");
    t.add({cell(r, "slot"), cell(r, "name"), cell(r, "action"), cell(r, "proto"), cell(r, "src"),
           cell(r, "dst"), cell(r, "dst_port"), cell(r, "interface"), cell(r, "endpoint"), rate,
           cell(r, "rule_id")});
  }
  std::cout << (t.empty() ? std::string("(no rules)\n") : t.render())
            << "default action: " << cell(listing, "default_action") << "\n";
  return kExitOk;
}

int cmd_rules_add(Ctl& ctl, const RuleSpec& rule) {
  nlohmann::json body = {{"name", rule.name}, {"action", rule.action}};
  auto put = [&](const char* key, const std::string& v) {
    if (!v.empty()) body[key] = v;
  };
  put("proto", rule.proto);
  put("src", rule.src);
  put("dst", rule.dst);
  put("dst_port", rule.dst_port);
  put("endpoint", rule.endpoint);
  put("interface", rule.interface);
  if (rule.rate_pps) body["rate_pps"] = rule.rate_pps;
  if (rule.burst) body["burst"] = rule.burst;
  if (rule.position) body["position"] = *rule.position;
  auto a = ctl.call("POST", "/v1/rules", body);
  if (a.exit != kExitOk) return a.exit;
  if (ctl.json())
    std::cout << a.body.dump(2) << "\n";
  else
    std::cout << "added rule " << rule.name << " (" << a.body["rules"].size()
              << " rules now; runtime rules last until the next reload or restart)\n";
  return kExitOk;
}

int cmd_rules_del(Ctl& ctl, const std::string& name) {
  auto a = ctl.call("DELETE", "/v1/rules/" + admin::url_encode(name));
  if (a.exit != kExitOk) return a.exit;
  if (ctl.json())
    std::cout << a.body.dump(2) << "\n";
  else
    std::cout << "deleted rule " << name << "\n";
  return kExitOk;
}

}  // namespace ramjet::ctl
