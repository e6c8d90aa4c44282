#include "proxy/upstream_link.h"

#include <unistd.h>

#include "proxy/http_forwarding.h"
#include "proxy/tls_streams.h"
#include "proxy/upstream_pool.h"

namespace ramjet::proxy {

using telemetry::Counter;

Task<std::variant<UpstreamLink, UpstreamFailure>> open_upstream_link(
    WorkerContext& wc, const config::Endpoint& ep, telemetry::CounterRow& counters,
    EgressChain& chain, FlowId flow, const HostPort& target, LinkOptions options) {
  auto decided = co_await chain.decide(target);
  if (auto* e = std::get_if<EgressError>(&decided))
    co_return UpstreamFailure{status_for(*e), e->proxy_status(), e->message, e->close_reason()};
  auto& dest = std::get<EgressChain::Destinations>(decided);
  const tls::EndpointTls* t = options.tls ? endpoint_tls(wc, ep) : nullptr;
  if (options.tls && (t == nullptr || !t->upstream)) {
    co_return UpstreamFailure{502, "tls_protocol_error", "no TLS client configuration for upstreams",
                              CloseReason::kUpstreamError};
  }
  UpstreamLink link;
  // Only a connection made for the same verified name is shared or reused.
  link.reuse_key =
      reuse_key_for(options.tls ? t->upstream->server_name(target.host) : "", dest);
  const bool may_share = options.tls && options.h2 && wc.h2_upstreams != nullptr;
  if (options.reuse && may_share) {
    for (;;) {
      link.h2 = wc.h2_upstreams->find(dest.addresses, link.reuse_key, link.address);
      if (link.h2) {
        link.reused = true;
        co_return link;
      }
      // A connection to this origin is being made: it may become the one to share.
      auto under_way = wc.h2_upstreams->connecting(dest.addresses.front(), link.reuse_key);
      if (!under_way) break;
      co_await under_way->done.wait();
    }
  }
  if (options.reuse) {
    UpstreamPool::Pooled pooled = wc.pool->take(dest.addresses, link.address, options.probe,
                                                link.reuse_key);
    if (pooled.fd >= 0) {
      counters.add(Counter::upstream_reused);
      link.reused = true;
      link.fd = pooled.fd;
      link.stream = pooled.tls ? std::move(pooled.tls)
                               : std::make_unique<runtime::PlainStream>(wc.worker, pooled.fd,
                                                                        wc.buffers.get());
      co_return link;
    }
  }
  // Others wait for this connect's outcome (set when this coroutine leaves, either way).
  struct Announce {
    std::shared_ptr<H2Upstreams::Connecting> c;
    ~Announce() {
      if (c) c->done.set();
    }
  } announce;
  if (may_share) announce.c = wc.h2_upstreams->begin_connect(dest.addresses.front(), link.reuse_key);
  auto r = co_await chain.connect_to(std::move(dest));
  if (auto* e = std::get_if<EgressError>(&r))
    co_return UpstreamFailure{status_for(*e), e->proxy_status(), e->message, e->close_reason()};
  const Upstream& up = std::get<Upstream>(r);
  link.fd = up.fd;
  link.address = up.address;
  if (!options.tls) {
    link.stream = std::make_unique<runtime::PlainStream>(wc.worker, up.fd, wc.buffers.get());
    co_return link;
  }
  UpstreamTlsFailure failure;
  link.stream = co_await open_upstream_tls(wc, *t->upstream, counters, up.fd, target.host,
                                           connect_timeout_for(wc, ep.connect_timeout), flow,
                                           failure, options.h2 && wc.h2_upstreams != nullptr);
  if (!link.stream) {
    ::close(link.fd);
    co_return UpstreamFailure{502, failure.proxy_status(), failure.detail,
                              CloseReason::kUpstreamError};
  }
  if (link.stream->alpn() == "h2") {
    if (!options.h2 || !wc.h2_upstreams) {  // it was not offered
      link.stream.reset();
      ::close(link.fd);
      co_return UpstreamFailure{502, "http_protocol_error", "the origin chose h2 unoffered",
                                CloseReason::kUpstreamError};
    }
    link.h2 = wc.h2_upstreams->adopt(link.fd, std::move(link.stream), link.address, link.reuse_key,
                                     counters);
    link.fd = -1;
  } else if (may_share && announce.c) {
    wc.h2_upstreams->learned_http1(announce.c->address, link.reuse_key);
  }
  co_return link;
}

void pool_upstream_link(WorkerContext& wc, UpstreamLink& link) {
  std::unique_ptr<runtime::Stream> tls_stream;
  if (link.stream && !link.stream->plain()) tls_stream = std::move(link.stream);
  link.stream.reset();
  wc.pool->put(link.address, link.fd, std::move(tls_stream), link.reuse_key);
  link.fd = -1;
}

}  // namespace ramjet::proxy
