// ramjet::bootstrap<App>(argc, argv): the whole daemon around an application's hooks.
//
// The engine is not a template: bootstrap<App> wraps the App's typed hooks and
// context types in a HookSet, whose calls take the per-connection context as void*.
// Only the adapter below knows the real types.
#pragma once

#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "ramjet/config/config.h"
#include "ramjet/hooks/app.h"

namespace ramjet {

namespace engine {

// Type-erased hooks of one application. A missing hook behaves as its default.
class HookSet {
 public:
  virtual ~HookSet() = default;

  virtual std::shared_ptr<void> make_connection_context() = 0;

  virtual bool has_ingress() const = 0;
  virtual bool has_egress() const = 0;

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
    if (!hooks_.ingress) hooks_.ingress = std::make_unique<IngressHook<Ctx>>();
    if (!hooks_.egress) hooks_.egress = std::make_unique<EgressHook<Ctx>>();
    if (!hooks_.http) hooks_.http = std::make_unique<HttpRequestHook<Ctx, ReqCtx>>();
  }

  std::shared_ptr<void> make_connection_context() override { return std::make_shared<Ctx>(); }
  bool has_ingress() const override { return true; }
  bool has_egress() const override { return true; }

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
  void lifecycle_start() override {
    if (hooks_.lifecycle) hooks_.lifecycle->start();
  }
  void lifecycle_stop() override {
    if (hooks_.lifecycle) hooks_.lifecycle->stop();
  }

 private:
  Hooks<App> hooks_;
};

// Everything the daemon needs to know about an application, without its types.
struct AppDescriptor {
  std::string name;
  std::string version;
  std::string description;
  config::AppSchema schema;
  // Called once with the parsed `app:` settings (a pointer to App::Settings).
  std::unique_ptr<HookSet> (*start)(const void* app_settings) = nullptr;
};

// Parses the command line, loads config, runs the daemon. Returns the exit code.
int run_app(const AppDescriptor& app, int argc, char** argv);

}  // namespace engine

template <typename App>
int bootstrap(int argc, char** argv) {
  using Traits = AppTraits<App>;
  engine::AppDescriptor d;
  d.name = std::string(App::name);
  d.version = std::string(App::version);
  d.description = std::string(App::description);
  d.schema.app_name = d.name;
  d.schema.app = settings::ErasedStruct::of<typename Traits::Settings>();
  d.schema.endpoint = settings::ErasedStruct::of<typename Traits::EndpointSettings>();
  d.start = [](const void* s) -> std::unique_ptr<engine::HookSet> {
    const auto& typed = *static_cast<const typename Traits::Settings*>(s);
    return std::make_unique<engine::TypedHookSet<App>>(App::start(typed));
  };
  return engine::run_app(d, argc, argv);
}

}  // namespace ramjet
