#include "http/auth/auth_table.h"

namespace ramjet::http::auth {

Result<std::shared_ptr<const AuthTable::Map>> AuthTable::build(
    const std::vector<config::Endpoint>& endpoints) {
  auto map = std::make_shared<Map>();
  for (const auto& ep : endpoints) {
    if (!ep.auth.enabled()) continue;
    AuthConfig ac;
    if (!ep.auth.htpasswd.empty()) ac.htpasswd_path = ep.auth.htpasswd;
    ac.preshared_keys = ep.auth.preshared_keys;
    ac.realm = ep.auth.realm;
    auto a = Authenticator::create(std::move(ac));
    if (!a.ok()) return Error::config("endpoints." + ep.name + ".auth: " + a.error().message);
    (*map)[ep.name] = std::make_shared<const Authenticator>(std::move(*a));
  }
  return std::shared_ptr<const Map>(std::move(map));
}

std::shared_ptr<const Authenticator> AuthTable::find(const std::string& endpoint) const {
  std::lock_guard lock(mu_);
  auto it = map_->find(endpoint);
  return it == map_->end() ? nullptr : it->second;
}

void AuthTable::replace(std::shared_ptr<const Map> next) {
  std::lock_guard lock(mu_);
  map_ = std::move(next);
}

}  // namespace ramjet::http::auth
