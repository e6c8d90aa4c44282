#include "app/runtime_policy.h"

#include <spdlog/spdlog.h>

#include <algorithm>

#include "datapath/datapath.h"
#include "datapath/kernel_flow.h"

namespace ramjet::app {

Result<void> RuntimePolicy::apply(const config::Config& next) {
  if (dp_ == nullptr) return Error::config("the datapath is not enabled");
  return dp_->apply_policy(next);
}

namespace {

// Keys a reload puts into effect; every other changed key waits for a restart. An
// endpoint's auth applies when the endpoint runs (an added one opens only on restart).
bool applies_at_runtime(const std::string& key, const config::Config& running) {
  if (key == "datapath.rules" || key.starts_with("datapath.rules[") ||
      key == "datapath.default_action" || key == "logging.level")
    return true;
  // The egress settings, but for the resolvers' part (built with their workers).
  if (key.starts_with("egress.") && key != "egress.happy_eyeballs.resolution_delay") return true;
  for (const auto& ep : running.endpoints) {
    const std::string auth = "endpoints[" + ep.name + "].auth";
    if (key == auth || key.starts_with(auth + ".")) return true;
  }
  return false;
}

}  // namespace

Result<ReloadReport> RuntimePolicy::reload(const EnginePrepare& engine) {
  auto fresh = config::load_file(path_, schema_);
  if (!fresh.ok()) return fresh.error();
  std::lock_guard lock(mu_);
  ReloadReport report;
  for (std::string& key : config::changed_keys(config_, *fresh, schema_)) {
    (applies_at_runtime(key, config_) ? report.applied : report.restart_required)
        .push_back(std::move(key));
  }
  std::function<void()> commit_engine;
  if (engine) {
    auto prepared = engine(*fresh);
    if (!prepared.ok()) return prepared.error();
    commit_engine = std::move(*prepared);
  }
  config::Config next = config_;
  next.datapath.rules = fresh->datapath.rules;
  next.datapath.default_action = fresh->datapath.default_action;
  next.logging.level = fresh->logging.level;
  next.egress = fresh->egress;
  next.egress.happy_eyeballs.resolution_delay = config_.egress.happy_eyeballs.resolution_delay;
  for (auto& ep : next.endpoints) {
    auto it = std::find_if(fresh->endpoints.begin(), fresh->endpoints.end(),
                           [&](const auto& f) { return f.name == ep.name; });
    if (it != fresh->endpoints.end()) ep.auth = it->auth;
  }
  if (dp_ != nullptr)
    if (auto r = apply(next); !r.ok()) return r.error();
  if (commit_engine) commit_engine();
  config_ = std::move(next);
  edited_ = false;
  report.rules = config_.datapath.rules.size();
  return report;
}

config::LoggingSettings RuntimePolicy::logging() const {
  std::lock_guard lock(mu_);
  return config_.logging;
}

Result<void> RuntimePolicy::add(config::DatapathRule rule, std::optional<std::size_t> position) {
  std::lock_guard lock(mu_);
  config::Config next = config_;
  auto& rules = next.datapath.rules;
  std::size_t at = position ? std::min(*position, rules.size()) : rules.size();
  rules.insert(rules.begin() + static_cast<std::ptrdiff_t>(at), std::move(rule));
  if (auto r = config::check_datapath(next, "POST /v1/rules"); !r.ok()) return r;
  if (auto r = apply(next); !r.ok()) return r;
  config_ = std::move(next);
  edited_ = true;
  return {};
}

Result<bool> RuntimePolicy::remove(const std::string& name) {
  std::lock_guard lock(mu_);
  config::Config next = config_;
  auto& rules = next.datapath.rules;
  auto it = std::find_if(rules.begin(), rules.end(), [&](const auto& r) { return r.name == name; });
  if (it == rules.end()) return false;
  rules.erase(it);
  if (auto r = apply(next); !r.ok()) return r.error();
  config_ = std::move(next);
  edited_ = true;
  return true;
}

bool RuntimePolicy::runtime_edits() const {
  std::lock_guard lock(mu_);
  return edited_;
}

admin::NameTable RuntimePolicy::names() const {
  std::lock_guard lock(mu_);
  admin::NameTable n;
  for (const auto& ep : config_.endpoints) n.endpoints.push_back(ep.name);
  for (const auto& r : config_.datapath.rules) n.rules[datapath::rule_id_for(r.name)] = r.name;
  return n;
}

}  // namespace ramjet::app
