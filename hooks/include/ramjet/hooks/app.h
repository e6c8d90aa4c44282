// What an application declares, and the hooks its start() returns.
//
//   struct MyApp {
//     static constexpr std::string_view name = "my-app";
//     static constexpr std::string_view version = "1.0.0";
//     static constexpr std::string_view description = "what it does";
//     using Settings = MySettings;                  // `app:` section (optional)
//     using EndpointSettings = MyEndpointSettings;  // each endpoint's `app:` (optional)
//     using IngressConnectionContext = MyCtx;       // per connection (optional)
//     using RequestContext = MyReqCtx;              // per HTTP request (optional)
//     static ramjet::Hooks<MyApp> start(const MySettings&);
//   };
//   int main(int argc, char** argv) { return ramjet::bootstrap<MyApp>(argc, argv); }
//
// Settings types describe themselves for the config loader: see ramjet/settings.h.
#pragma once

#include <memory>
#include <string_view>
#include <type_traits>

#include "ramjet/hooks/egress.h"
#include "ramjet/hooks/http.h"
#include "ramjet/hooks/ingress.h"
#include "ramjet/hooks/ip.h"
#include "ramjet/hooks/lifecycle.h"
#include "ramjet/hooks/proxy_protocol_hook.h"
#include "ramjet/settings.h"

namespace ramjet {

// The default for every optional App declaration: no settings, no state.
struct NoSettings {
  static void describe(settings::Fields<NoSettings>&) {}
};
struct NoContext {};

namespace detail {
template <typename A, typename = void>
struct AppSettingsOf {
  using type = NoSettings;
};
template <typename A>
struct AppSettingsOf<A, std::void_t<typename A::Settings>> {
  using type = typename A::Settings;
};
template <typename A, typename = void>
struct AppEndpointSettingsOf {
  using type = NoSettings;
};
template <typename A>
struct AppEndpointSettingsOf<A, std::void_t<typename A::EndpointSettings>> {
  using type = typename A::EndpointSettings;
};
template <typename A, typename = void>
struct AppRequestContextOf {
  using type = NoContext;
};
template <typename A>
struct AppRequestContextOf<A, std::void_t<typename A::RequestContext>> {
  using type = typename A::RequestContext;
};
template <typename A, typename = void>
struct AppIngressContextOf {
  using type = NoContext;
};
template <typename A>
struct AppIngressContextOf<A, std::void_t<typename A::IngressConnectionContext>> {
  using type = typename A::IngressConnectionContext;
};
}  // namespace detail

template <typename App>
struct AppTraits {
  using Settings = typename detail::AppSettingsOf<App>::type;
  using EndpointSettings = typename detail::AppEndpointSettingsOf<App>::type;
  using IngressConnectionContext = typename detail::AppIngressContextOf<App>::type;
  using RequestContext = typename detail::AppRequestContextOf<App>::type;
};

// The hooks an application provides; any of them may be left empty.
template <typename App>
struct Hooks {
  using Ctx = typename AppTraits<App>::IngressConnectionContext;
  using ReqCtx = typename AppTraits<App>::RequestContext;
  std::unique_ptr<ProxyProtocolConnectionHook<Ctx>> proxy_protocol;
  std::unique_ptr<IngressHook<Ctx>> ingress;
  std::unique_ptr<EgressHook<Ctx>> egress;
  std::unique_ptr<HttpRequestHook<Ctx, ReqCtx>> http;
  std::unique_ptr<IpFlowHook<Ctx>> ip;
  std::unique_ptr<AppLifecycleHook> lifecycle;
};

}  // namespace ramjet
