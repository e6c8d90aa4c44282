// TlsTable: the TLS contexts of every endpoint, built once at start from the config
// (certificate files loaded and checked) and shared by all workers. check_config_files
// is the same construction as a config check, so `ramjetd --check-config` reports a
// missing file or a key that does not match at its file:line:col.
#pragma once

#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "ramjet/config/config.h"
#include "tls/client_context.h"
#include "tls/server_context.h"

namespace ramjet::tls {

struct EndpointTls {
  std::shared_ptr<ServerContext> server;    // null: the endpoint takes plaintext
  std::shared_ptr<ClientContext> upstream;  // null: no TLS to upstreams
};

class TlsTable {
 public:
  // `key` names the failing setting from the endpoint down, e.g. "tls.certificates[1].key".
  using OnError = std::function<void(std::size_t endpoint, const std::string& key,
                                     const std::string& message)>;
  // Builds what every endpoint needs: a server context for `tls:`, a client context for
  // `upstream_tls:` (http endpoints get the defaults, for https:// upstreams).
  static TlsTable build(const std::vector<config::Endpoint>& endpoints, const OnError& on_error);

  // Null when the endpoint has no TLS at all.
  const EndpointTls* find(std::string_view endpoint) const;

 private:
  std::unordered_map<std::string, EndpointTls> by_name_;
};

// A config::AppSchema::Check: every TLS file loads and fits.
void check_config_files(const config::Config& c, const settings::Node& root,
                        settings::ParseContext& ctx);

}  // namespace ramjet::tls
