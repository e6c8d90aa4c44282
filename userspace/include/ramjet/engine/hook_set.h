// The type-erased hooks the engine calls (engine::HookSet) and the adapter that
// erases an application's typed hooks into it (engine::TypedHookSet<App>).
//
// The engine is not a template: the proxy layer's sessions call a HookSet, whose
// calls take the per-connection context as void*. Only TypedHookSet knows the real
// types; ramjet::bootstrap<App> (ramjet/bootstrap.h) builds one.
#pragma once

#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "ramjet/hooks/app.h"

namespace ramjet::engine {

// Type-erased hooks of one application. A missing hook behaves as its default.
class HookSet {
 public:
  virtual ~HookSet() = default;

  virtual std::shared_ptr<void> make_connection_context() = 0;

  virtual bool has_ingress() const = 0;
  virtual bool has_egress() const = 0;

  virtual Task<ProxyProtocolDecision> proxy_protocol_handle_connection(const ConnectionInfo& c,
                                                                       const ProxyHeader& h,
                                                                       void* ctx) = 0;
  virtual Task<IngressDecision> ingress_handle_connection(const ConnectionInfo& c, void* ctx) = 0;
  virtual void ingress_handle_connection_close(const ConnectionInfo& c, const ConnectionStats& s,
                                               void* ctx) = 0;

  virtual Task<EgressDecision> egress_handle_connection(const ConnectionInfo& c,
                                                        const EgressRequest& r, void* ctx) = 0;
  virtual Task<std::optional<std::vector<IpAddress>>> egress_dns_resolve_override(
      const ConnectionInfo& c, const std::string& host, void* ctx) = 0;
  virtual Task<UpstreamIpsPolicy> egress_handle_upstream_ips(const ConnectionInfo& c,
                                                             UpstreamIps& ips, void* ctx) = 0;
  virtual Task<ConnectOverride> egress_tcp_connect_override(const ConnectionInfo& c,
                                                            const SocketAddress& a, void* ctx) = 0;
  virtual Task<ConnectOverride> egress_udp_connect_override(const ConnectionInfo& c,
                                                            const SocketAddress& a, void* ctx) = 0;
  virtual void egress_handle_connection_established(const ConnectionInfo& c,
                                                    const EstablishedInfo& e, void* ctx) = 0;

  virtual std::shared_ptr<void> make_request_context() = 0;
  virtual Task<ConnectDirective> http_connect_request(const ConnectionInfo& c,
                                                      const HttpRequestHead& h, void* ctx) = 0;
  virtual void http_connect_response(const ConnectionInfo& c, HttpResponseHead& r, void* ctx) = 0;
  virtual Task<RequestDirective> http_request(const ConnectionInfo& c, HttpRequestHead& h,
                                              void* ctx, void* req) = 0;
  virtual Task<ResponseDirective> http_response(const ConnectionInfo& c, const HttpRequestHead& h,
                                                HttpResponseHead& r, void* ctx, void* req) = 0;

  virtual Task<IpFlowDecision> ip_handle_flow(const IpFlow& f, void* ctx) = 0;
  virtual IpPacketVerdict ip_handle_packet(const IpFlow& f, IpPacket& p, void* ctx) = 0;
  virtual void ip_handle_flow_close(const IpFlow& f, const IpFlowStats& s, void* ctx) = 0;

  virtual void lifecycle_start() = 0;
  virtual void lifecycle_stop() = 0;
};

template <typename App>
class TypedHookSet final : public HookSet {
 public:
  using Ctx = typename AppTraits<App>::IngressConnectionContext;
  using ReqCtx = typename AppTraits<App>::RequestContext;

  explicit TypedHookSet(Hooks<App> hooks) : hooks_(std::move(hooks)) {
    // A missing hook is the default implementation, so the engine never branches on it.
    if (!hooks_.proxy_protocol)
      hooks_.proxy_protocol = std::make_unique<ProxyProtocolConnectionHook<Ctx>>();
    if (!hooks_.ingress) hooks_.ingress = std::make_unique<IngressHook<Ctx>>();
    if (!hooks_.egress) hooks_.egress = std::make_unique<EgressHook<Ctx>>();
    if (!hooks_.http) hooks_.http = std::make_unique<HttpRequestHook<Ctx, ReqCtx>>();
    if (!hooks_.ip) hooks_.ip = std::make_unique<IpFlowHook<Ctx>>();
  }

  std::shared_ptr<void> make_connection_context() override { return std::make_shared<Ctx>(); }
  bool has_ingress() const override { return true; }
  bool has_egress() const override { return true; }

  Task<ProxyProtocolDecision> proxy_protocol_handle_connection(const ConnectionInfo& c,
                                                               const ProxyHeader& h,
                                                               void* ctx) override {
    return hooks_.proxy_protocol->handle_connection(c, h, *static_cast<Ctx*>(ctx));
  }
  Task<IngressDecision> ingress_handle_connection(const ConnectionInfo& c, void* ctx) override {
    return hooks_.ingress->handle_connection(c, *static_cast<Ctx*>(ctx));
  }
  void ingress_handle_connection_close(const ConnectionInfo& c, const ConnectionStats& s,
                                       void* ctx) override {
    hooks_.ingress->handle_connection_close(c, s, *static_cast<Ctx*>(ctx));
  }
  Task<EgressDecision> egress_handle_connection(const ConnectionInfo& c, const EgressRequest& r,
                                                void* ctx) override {
    return hooks_.egress->handle_connection(c, r, *static_cast<Ctx*>(ctx));
  }
  Task<std::optional<std::vector<IpAddress>>> egress_dns_resolve_override(const ConnectionInfo& c,
                                                                          const std::string& host,
                                                                          void* ctx) override {
    return hooks_.egress->dns_resolve_override(c, host, *static_cast<Ctx*>(ctx));
  }
  Task<UpstreamIpsPolicy> egress_handle_upstream_ips(const ConnectionInfo& c, UpstreamIps& ips,
                                                     void* ctx) override {
    return hooks_.egress->handle_upstream_ips(c, ips, *static_cast<Ctx*>(ctx));
  }
  Task<ConnectOverride> egress_tcp_connect_override(const ConnectionInfo& c, const SocketAddress& a,
                                                    void* ctx) override {
    return hooks_.egress->tcp_connect_override(c, a, *static_cast<Ctx*>(ctx));
  }
  Task<ConnectOverride> egress_udp_connect_override(const ConnectionInfo& c, const SocketAddress& a,
                                                    void* ctx) override {
    return hooks_.egress->udp_connect_override(c, a, *static_cast<Ctx*>(ctx));
  }
  void egress_handle_connection_established(const ConnectionInfo& c, const EstablishedInfo& e,
                                            void* ctx) override {
    hooks_.egress->handle_connection_established(c, e, *static_cast<Ctx*>(ctx));
  }
  std::shared_ptr<void> make_request_context() override { return std::make_shared<ReqCtx>(); }
  Task<ConnectDirective> http_connect_request(const ConnectionInfo& c, const HttpRequestHead& h,
                                              void* ctx) override {
    return hooks_.http->handle_proxy_connect_request(c, h, *static_cast<Ctx*>(ctx));
  }
  void http_connect_response(const ConnectionInfo& c, HttpResponseHead& r, void* ctx) override {
    hooks_.http->handle_proxy_connect_response(c, r, *static_cast<Ctx*>(ctx));
  }
  Task<RequestDirective> http_request(const ConnectionInfo& c, HttpRequestHead& h, void* ctx,
                                      void* req) override {
    return hooks_.http->handle_request(c, h, *static_cast<Ctx*>(ctx), *static_cast<ReqCtx*>(req));
  }
  Task<ResponseDirective> http_response(const ConnectionInfo& c, const HttpRequestHead& h,
                                        HttpResponseHead& r, void* ctx, void* req) override {
    return hooks_.http->handle_response(c, h, r, *static_cast<Ctx*>(ctx),
                                        *static_cast<ReqCtx*>(req));
  }
  Task<IpFlowDecision> ip_handle_flow(const IpFlow& f, void* ctx) override {
    return hooks_.ip->handle_flow(f, *static_cast<Ctx*>(ctx));
  }
  IpPacketVerdict ip_handle_packet(const IpFlow& f, IpPacket& p, void* ctx) override {
    return hooks_.ip->handle_packet(f, p, *static_cast<Ctx*>(ctx));
  }
  void ip_handle_flow_close(const IpFlow& f, const IpFlowStats& s, void* ctx) override {
    hooks_.ip->handle_flow_close(f, s, *static_cast<Ctx*>(ctx));
  }
  void lifecycle_start() override {
    if (hooks_.lifecycle) hooks_.lifecycle->start();
  }
  void lifecycle_stop() override {
    if (hooks_.lifecycle) hooks_.lifecycle->stop();
  }

 private:
  Hooks<App> hooks_;
};

}  // namespace ramjet::engine
