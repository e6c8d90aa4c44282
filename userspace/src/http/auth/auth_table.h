// The proxy authenticators of the http endpoints, by endpoint name: shared by every worker and
// replaced as a whole when a reload re-reads the htpasswd files. A session takes its endpoint's
// authenticator when it starts and keeps it, so a reload never changes the rules under a
// connection that is already running.
#pragma once

#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "http/auth/proxy_auth.h"
#include "ramjet/config/config.h"
#include "ramjet/result.h"

namespace ramjet::http::auth {

class AuthTable {
 public:
  using Map = std::map<std::string, std::shared_ptr<const Authenticator>>;

  // One authenticator per endpoint with `auth` configured (its htpasswd file read now).
  // Errors are Error::config and name the endpoint.
  static Result<std::shared_ptr<const Map>> build(const std::vector<config::Endpoint>& endpoints);

  // The authenticator of `endpoint`, or null when it has none.
  std::shared_ptr<const Authenticator> find(const std::string& endpoint) const;
  // Puts `next` in place for the sessions that start from now on.
  void replace(std::shared_ptr<const Map> next);

 private:
  mutable std::mutex mu_;
  std::shared_ptr<const Map> map_ = std::make_shared<const Map>();  // guarded by mu_
};

}  // namespace ramjet::http::auth
