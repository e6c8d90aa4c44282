#include "app/admin_routes.h"

#include <charconv>
#include <memory>
#include <nlohmann/json.hpp>
#include <unordered_set>

#include "admin/flow_join.h"
#include "admin/flow_view.h"
#include "admin/policy_view.h"
#include "app/runtime_policy.h"
#include "app/server.h"
#include "datapath/datapath.h"
#include "datapath/json.h"
#include "datapath/kernel_flow.h"
#include "datapath/pinned_maps.h"
#include "telemetry/audit_log.h"
#include "telemetry/event_feed.h"
#include "telemetry/hook_trace.h"
#include "telemetry/stats.h"

namespace ramjet::app {

namespace {

using admin::FlowView;
using admin::HttpRequest;
using admin::HttpResponse;
using admin::json_error;

constexpr std::size_t kLinesPerPiece = 1024;  // of a streamed body

HttpResponse ok(const nlohmann::json& j) {
  return {200, j.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace)};
}

HttpResponse error_for(const Error& e) {
  return json_error(e.source == ErrorSource::kConfig ? 400 : 500, e.message);
}

std::optional<FlowId> parse_id(std::string_view s) {
  FlowId id = 0;
  auto [p, ec] = std::from_chars(s.data(), s.data() + s.size(), id);
  if (ec != std::errc() || p != s.data() + s.size() || s.empty()) return std::nullopt;
  return id;
}

// What the handlers share. Lives as long as the admin server (captured by its routes).
class Api {
 public:
  explicit Api(const AdminRoutes& r) : r_(r) {
    if (r_.datapath != nullptr)
      maps_ = std::make_unique<datapath::PinnedMaps>(r_.datapath->pin_dir());
  }

  // --- the daemon ---

  HttpResponse status() const { return ok(r_.status()); }

  // Totals under "counters" (what ramjetctl prints), and the same per endpoint.
  static HttpResponse stats() {
    auto snap = telemetry::stats().snapshot();
    nlohmann::json counters = nlohmann::json::object();
    for (std::size_t i = 0; i < telemetry::kCounterCount; ++i)
      counters[std::string(telemetry::kCounterNames[i])] =
          snap.total(static_cast<telemetry::Counter>(i));
    nlohmann::json endpoints = nlohmann::json::object();
    for (std::size_t e = 0; e < snap.endpoints.size(); ++e) {
      nlohmann::json ep = nlohmann::json::object();
      for (std::size_t i = 0; i < telemetry::kCounterCount; ++i)
        ep[std::string(telemetry::kCounterNames[i])] = snap.per_endpoint[e][i];
      endpoints[snap.endpoints[e]] = std::move(ep);
    }
    return ok({{"counters", counters}, {"endpoints", endpoints}});
  }

  // Details may carry bytes from the network: ok() replaces invalid UTF-8.
  static HttpResponse hook_trace() {
    nlohmann::json events = nlohmann::json::array();
    for (const auto& e : telemetry::hook_trace().snapshot())
      events.push_back(admin::hook_event_json(e));
    return ok({{"enabled", telemetry::hook_trace().enabled()}, {"events", events}});
  }

  HttpResponse datapath_status() const {
    if (!r_.datapath) return HttpResponse{200, R"({"enabled":false})"};
    return ok(datapath::status_json(*r_.datapath));
  }

  HttpResponse datapath_flows() const {
    if (!r_.datapath) return json_error(409, "the datapath is not enabled");
    return ok(datapath::flows_json(*r_.datapath));
  }

  HttpResponse reopen_audit_log() const {
    if (!r_.audit_log) return json_error(409, "the audit log is off (telemetry.audit_log.path)");
    if (auto r = r_.audit_log->reopen(); !r.ok()) return json_error(500, r.error().message);
    return ok({{"reopened", r_.audit_log->path()}});
  }

  HttpResponse endpoints() const {
    auto snap = telemetry::stats().snapshot();
    nlohmann::json out = nlohmann::json::array();
    for (std::size_t i = 0; i < r_.config.endpoints.size(); ++i) {
      const auto& ep = r_.config.endpoints[i];
      auto bound = r_.server.bound().find(ep.name);
      std::int64_t active =
          i < snap.per_endpoint.size()
              ? snap.per_endpoint[i]
                                 [static_cast<std::size_t>(telemetry::Counter::connections_active)]
              : 0;
      out.push_back({{"id", config::endpoint_id(i)},
                     {"name", ep.name},
                     {"onramp", ep.onramp == config::Onramp::kHttp  ? "http"
                                : ep.onramp == config::Onramp::kUdp ? "udp"
                                                                    : "tcp"},
                     {"listen", bound != r_.server.bound().end() ? bound->second.to_string()
                                                                 : ep.listen.to_string()},
                     {"transparent", ep.transparent},
                     {"connections_active", active}});
    }
    return ok(out);
  }

  HttpResponse connections() const {
    nlohmann::json out = nlohmann::json::array();
    for (const auto& c : r_.server.connections()) out.push_back(admin::connection_json(c));
    return ok(out);
  }

  // Both halves joined by flow id (admin/flow_join.h), filtered.
  Result<std::vector<FlowView>> flows(const admin::FlowFilter& filter,
                                      const admin::NameTable& names, std::uint64_t now_ns) {
    std::vector<FlowView> out;
    auto r = admin::join_flows(maps_.get(), admin::by_flow_id(r_.server.connections()),
                               [&](FlowView&& v) {
                                 v.rate_bps = admin::average_rate_bps(v, now_ns);
                                 if (filter.matches(v, names)) out.push_back(std::move(v));
                                 return true;
                               });
    if (!r.ok()) return r.error();
    return out;
  }

  HttpResponse list_flows(const HttpRequest& req) {
    auto filter = admin::FlowFilter::from_query(req.query);
    if (!filter.ok()) return json_error(400, filter.error().message);
    auto names = r_.policy.names();
    auto now = datapath::monotonic_now_ns();
    auto views = flows(*filter, names, now);
    if (!views.ok()) return error_for(views.error());
    // One NDJSON line per flow, sent a slice at a time.
    struct State {
      std::vector<FlowView> views;
      admin::NameTable names;
      std::uint64_t now;
      std::size_t next = 0;
    };
    auto st = std::make_shared<State>(State{std::move(*views), std::move(names), now});
    HttpResponse resp{200, ""};
    resp.content_type = "application/x-ndjson";
    resp.stream = [st]() -> std::optional<std::string> {
      if (st->next >= st->views.size()) return std::nullopt;
      std::string piece;
      for (std::size_t n = 0; n < kLinesPerPiece && st->next < st->views.size(); ++n) {
        admin::append_flow_json(piece, st->views[st->next++], st->names, st->now);
        piece += '\n';
      }
      return piece;
    };
    return resp;
  }

  HttpResponse show_flow(FlowId id) {
    admin::FlowFilter f;
    f.id = id;
    auto names = r_.policy.names();
    auto now = datapath::monotonic_now_ns();
    auto views = flows(f, names, now);
    if (!views.ok()) return error_for(views.error());
    if (views->empty()) return json_error(404, "no flow " + std::to_string(id));
    nlohmann::json j = admin::flow_json(views->front(), names, now);
    nlohmann::json hooks = nlohmann::json::array();
    for (const auto& e : telemetry::hook_trace().snapshot())
      if (e.flow == id) hooks.push_back(admin::hook_event_json(e));
    j["hooks"] = std::move(hooks);
    return ok(j);
  }

  // Closes the engine half and deletes the kernel half of every matching flow.
  HttpResponse kill(const admin::FlowFilter& filter) {
    auto names = r_.policy.names();
    auto views = flows(filter, names, datapath::monotonic_now_ns());
    if (!views.ok()) return error_for(views.error());
    std::unordered_set<FlowId> kernel_ids, engine_ids;
    for (const auto& v : *views) {
      if (v.kernel) kernel_ids.insert(v.id);
      if (v.engine) engine_ids.insert(v.id);
    }
    std::size_t engine = 0, kernel = 0;
    if (!engine_ids.empty())
      engine = r_.server.kill(
          [&](const admin::EngineConnection& c) { return engine_ids.count(c.id) > 0; });
    if (maps_ && !kernel_ids.empty()) {
      auto n = maps_->delete_flows(
          [&](const datapath::KernelFlow& k) { return kernel_ids.count(k.id) > 0; });
      if (!n.ok()) return error_for(n.error());
      kernel = *n;
    }
    if (kernel == 0 && engine == 0)
      return json_error(404, filter.only_id() ? "no flow " + std::to_string(*filter.id)
                                              : "no flow matches " + filter.to_query());
    return ok({{"kernel", kernel}, {"engine", engine}});
  }

  HttpResponse flow_route(const HttpRequest& req) {
    std::string_view rest =
        std::string_view(req.path).substr(std::string_view("/v1/flows/").size());
    bool kill_it = rest.ends_with("/kill");
    if (kill_it) rest.remove_suffix(std::string_view("/kill").size());
    auto id = parse_id(rest);
    if (!id) return json_error(404, "no such route: " + req.path + " (flow ids are numbers)");
    if (kill_it != (req.method == "POST")) {
      const char* allow = kill_it ? "POST" : "GET";
      HttpResponse r = json_error(405, req.path + " takes " + allow);
      r.extra_fields = std::string("Allow: ") + allow + "\r\n";
      return r;
    }
    if (!kill_it) return show_flow(*id);
    admin::FlowFilter f;
    f.id = *id;
    return kill(f);
  }

  HttpResponse kill_matching(const HttpRequest& req) {
    auto filter = admin::FlowFilter::from_query(req.query);
    if (!filter.ok()) return json_error(400, filter.error().message);
    if (filter->empty()) return json_error(400, "name the flows to kill: an id or a filter");
    return kill(*filter);
  }

  // --- blocks ---

  HttpResponse blocks() {
    if (!maps_) return json_error(409, "the datapath is not enabled");
    auto list = maps_->blocks();
    if (!list.ok()) return error_for(list.error());
    auto now = datapath::monotonic_now_ns();
    nlohmann::json out = nlohmann::json::array();
    for (const auto& b : *list) out.push_back(admin::block_json(b, now));
    return ok(out);
  }

  HttpResponse block(const HttpRequest& req) {
    if (!r_.datapath) return json_error(409, "the datapath is not enabled");
    auto body = nlohmann::json::parse(req.body, nullptr, false);
    if (!body.is_object() || !body.contains("prefix") || !body["prefix"].is_string())
      return json_error(400, "expected {\"prefix\": \"10.0.0.0/8\", \"duration_ms\": N}");
    auto prefix = Cidr::parse(body["prefix"].get<std::string>());
    if (!prefix) return json_error(400, "prefix: not a CIDR: " + body["prefix"].get<std::string>());
    std::int64_t ms = 0;
    if (body.contains("duration_ms")) {
      if (!body["duration_ms"].is_number_integer() || body["duration_ms"].get<std::int64_t>() < 0)
        return json_error(400, "duration_ms: a whole number of milliseconds, 0 = until removed");
      ms = body["duration_ms"].get<std::int64_t>();
    }
    auto r =
        r_.datapath->block(*prefix, std::chrono::milliseconds(ms), datapath::kBlockTagOperator);
    if (!r.ok()) return error_for(r.error());
    auto now = datapath::monotonic_now_ns();
    datapath::BlockEntry b{*prefix, ms ? now + std::uint64_t(ms) * 1'000'000 : 0,
                           datapath::kBlockTagOperator};
    return ok(admin::block_json(b, now));
  }

  HttpResponse unblock(const HttpRequest& req) {
    if (!r_.datapath) return json_error(409, "the datapath is not enabled");
    std::string text = admin::url_decode(
        std::string_view(req.path).substr(std::string_view("/v1/blocks/").size()));
    auto prefix = Cidr::parse(text);
    if (!prefix) return json_error(400, "not a CIDR: " + text);
    auto r = r_.datapath->unblock(*prefix);
    if (!r.ok())
      return r.error().source == ErrorSource::kConfig ? json_error(404, r.error().message)
                                                      : error_for(r.error());
    return ok({{"prefix", prefix->to_string()}, {"removed", true}});
  }

  // --- rules ---

  HttpResponse rules() {
    if (!maps_) return json_error(409, "the datapath is not enabled");
    auto slots = maps_->rules();
    if (!slots.ok()) return error_for(slots.error());
    auto rt = maps_->runtime();
    if (!rt.ok()) return error_for(rt.error());
    auto j = admin::rules_listing(*slots, *rt, r_.policy.names(), "daemon");
    j["runtime_edits"] = r_.policy.runtime_edits();
    return ok(j);
  }

  HttpResponse add_rule(const HttpRequest& req) {
    if (!r_.datapath) return json_error(409, "the datapath is not enabled");
    auto body = nlohmann::json::parse(req.body, nullptr, false);
    if (!body.is_object()) return json_error(400, "POST /v1/rules: the body is a JSON object");
    std::optional<std::size_t> position;
    if (body.contains("position")) {
      if (!body["position"].is_number_unsigned())
        return json_error(400, "POST /v1/rules: position: a rule index (0 = first)");
      position = body["position"].get<std::size_t>();
      body.erase("position");
    }
    // Numbers the CLI sends as text stay what the config file would hold.
    auto rule = config::parse_datapath_rule(body.dump(), "POST /v1/rules");
    if (!rule.ok()) return json_error(400, rule.error().message);
    if (auto r = r_.policy.add(std::move(*rule), position); !r.ok()) return error_for(r.error());
    return rules();
  }

  HttpResponse del_rule(const HttpRequest& req) {
    if (!r_.datapath) return json_error(409, "the datapath is not enabled");
    std::string name =
        admin::url_decode(std::string_view(req.path).substr(std::string_view("/v1/rules/").size()));
    auto r = r_.policy.remove(name);
    if (!r.ok()) return error_for(r.error());
    if (!*r) return json_error(404, "no rule named " + name);
    return rules();
  }

  // --- daemon ---

  HttpResponse reload() {
    auto r = r_.reload();
    if (!r.ok()) return error_for(r.error());
    return ok({{"reloaded", true},
               {"config", r_.policy.config_path()},
               {"rules", r->rules},
               {"applied", r->applied},
               {"restart_required", r->restart_required}});
  }

  HttpResponse drain() {
    r_.drain();
    return ok({{"draining", true}, {"deadline_ms", r_.config.server.drain_timeout.count()}});
  }

  // The kept events, then (follow=1) new ones as they come.
  static HttpResponse events(const HttpRequest& req) {
    bool follow = req.query == "follow=1" || req.query == "follow=true";
    if (!follow && !req.query.empty()) return json_error(400, "the only parameter is follow=1");
    struct State {
      std::uint64_t cursor = 0;
      bool follow;
    };
    auto st = std::make_shared<State>(State{0, follow});
    HttpResponse resp{200, ""};
    resp.content_type = "application/x-ndjson";
    resp.stream = [st]() -> std::optional<std::string> {
      auto b = telemetry::event_feed().since(st->cursor, kLinesPerPiece);
      st->cursor = b.cursor;
      if (b.lines.empty()) return st->follow ? std::optional<std::string>("") : std::nullopt;
      std::string piece;
      if (b.missed)
        piece += R"({"type":"events_lost","time":")" +
                 telemetry::rfc3339_ms(std::chrono::system_clock::now()) + R"(","count":)" +
                 std::to_string(b.missed) + "}\n";
      for (auto& l : b.lines) piece += l + '\n';
      return piece;
    };
    return resp;
  }

 private:
  const AdminRoutes& r_;
  std::unique_ptr<datapath::PinnedMaps> maps_;
};

}  // namespace

void add_admin_routes(admin::AdminServer& admin, const AdminRoutes& routes) {
  auto api = std::make_shared<Api>(routes);
  auto on = [&](const char* method, const char* path, auto fn) {
    admin.route(method, path, [api, fn](const HttpRequest& req) { return fn(*api, req); });
  };
  on("GET", "/v1/status", [](Api& a, const HttpRequest&) { return a.status(); });
  on("GET", "/v1/stats", [](Api&, const HttpRequest&) { return Api::stats(); });
  on("GET", "/v1/hooks/trace", [](Api&, const HttpRequest&) { return Api::hook_trace(); });
  on("GET", "/v1/endpoints", [](Api& a, const HttpRequest&) { return a.endpoints(); });
  on("GET", "/v1/connections", [](Api& a, const HttpRequest&) { return a.connections(); });
  on("GET", "/v1/flows", [](Api& a, const HttpRequest& r) { return a.list_flows(r); });
  on("GET", "/v1/flows/", [](Api& a, const HttpRequest& r) { return a.flow_route(r); });
  on("POST", "/v1/flows/", [](Api& a, const HttpRequest& r) { return a.flow_route(r); });
  on("POST", "/v1/flows/kill", [](Api& a, const HttpRequest& r) { return a.kill_matching(r); });
  on("GET", "/v1/blocks", [](Api& a, const HttpRequest&) { return a.blocks(); });
  on("POST", "/v1/blocks", [](Api& a, const HttpRequest& r) { return a.block(r); });
  on("DELETE", "/v1/blocks/", [](Api& a, const HttpRequest& r) { return a.unblock(r); });
  on("GET", "/v1/rules", [](Api& a, const HttpRequest&) { return a.rules(); });
  on("POST", "/v1/rules", [](Api& a, const HttpRequest& r) { return a.add_rule(r); });
  on("DELETE", "/v1/rules/", [](Api& a, const HttpRequest& r) { return a.del_rule(r); });
  on("GET", "/v1/datapath", [](Api& a, const HttpRequest&) { return a.datapath_status(); });
  on("GET", "/v1/datapath/flows", [](Api& a, const HttpRequest&) { return a.datapath_flows(); });
  on("POST", "/v1/audit/reopen", [](Api& a, const HttpRequest&) { return a.reopen_audit_log(); });
  on("POST", "/v1/reload", [](Api& a, const HttpRequest&) { return a.reload(); });
  on("POST", "/v1/drain", [](Api& a, const HttpRequest&) { return a.drain(); });
  on("GET", "/v1/events", [](Api&, const HttpRequest& r) { return Api::events(r); });
}

}  // namespace ramjet::app
