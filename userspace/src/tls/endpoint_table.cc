#include "tls/endpoint_table.h"

#include <spdlog/spdlog.h>

namespace ramjet::tls {
namespace {

// The node at `path` ("tls.certificates[1].key") below `node`, as deep as it exists.
const settings::Node* descend(const settings::Node* node, std::string_view path,
                              settings::Mark& mark) {
  while (node != nullptr && !path.empty()) {
    auto dot = path.find('.');
    std::string_view part = path.substr(0, dot);
    path = dot == std::string_view::npos ? std::string_view() : path.substr(dot + 1);
    std::size_t index = std::string_view::npos;
    if (auto br = part.find('['); br != std::string_view::npos) {
      index = std::stoul(std::string(part.substr(br + 1)));
      part = part.substr(0, br);
    }
    node = node->find(part);
    if (node != nullptr && node->mark.line) mark = node->mark;
    if (node != nullptr && index != std::string_view::npos) {
      node = node->is_sequence() && index < node->items.size() ? &node->items[index] : nullptr;
      if (node != nullptr && node->mark.line) mark = node->mark;
    }
  }
  return node;
}

}  // namespace

TlsTable TlsTable::build(const std::vector<config::Endpoint>& endpoints, const OnError& on_error) {
  TlsTable t;
  for (std::size_t i = 0; i < endpoints.size(); ++i) {
    const config::Endpoint& ep = endpoints[i];
    EndpointTls e;
    std::string key;
    std::string error;
    if (ep.tls) {
      e.server = ServerContext::create(*ep.tls, key, error);
      if (!e.server) on_error(i, "tls." + key, error);
      if (e.server && !ep.tls->keylog_file.empty()) {
        spdlog::warn("endpoint {}: TLS keys are logged to {} (tls.keylog_file): anyone who can "
                     "read it can decrypt this endpoint's traffic",
                     ep.name, ep.tls->keylog_file);
      }
    }
    if (ep.upstream_tls || ep.onramp == config::Onramp::kHttp) {
      // https:// upstreams without upstream_tls: verified against the system's CAs.
      config::TlsClientSettings s = ep.upstream_tls.value_or(config::TlsClientSettings{});
      // An http endpoint speaks HTTP/2 to an origin that chooses it (proxy/h2_upstream.h).
      if (ep.onramp == config::Onramp::kHttp && s.alpn.empty()) s.alpn = {"h2", "http/1.1"};
      e.upstream = ClientContext::create(s, key, error);
      if (!e.upstream && ep.upstream_tls) {
        on_error(i, "upstream_tls." + key, error);
      } else if (!e.upstream) {
        spdlog::warn("endpoint {}: no TLS to https:// upstreams: {}", ep.name, error);
      }
    }
    if (e.server || e.upstream) t.by_name_.emplace(ep.name, std::move(e));
  }
  return t;
}

const EndpointTls* TlsTable::find(std::string_view endpoint) const {
  auto it = by_name_.find(std::string(endpoint));
  return it == by_name_.end() ? nullptr : &it->second;
}

void check_config_files(const config::Config& c, const settings::Node& root,
                        settings::ParseContext& ctx) {
  std::vector<config::Endpoint> tls_endpoints;
  std::vector<std::size_t> index;
  for (std::size_t i = 0; i < c.endpoints.size(); ++i) {
    if (!c.endpoints[i].tls && !c.endpoints[i].upstream_tls) continue;
    tls_endpoints.push_back(c.endpoints[i]);
    index.push_back(i);
  }
  TlsTable::build(tls_endpoints, [&](std::size_t e, const std::string& key,
                                     const std::string& message) {
    std::size_t i = index[e];
    const settings::Node* ep = config::endpoint_node(root, i);
    settings::Mark mark = ep != nullptr ? ep->mark : root.mark;
    descend(ep, key, mark);
    ctx.error(mark, settings::index_path("endpoints", i) + "." + key, message);
  });
}

}  // namespace ramjet::tls
