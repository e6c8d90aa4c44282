#include "datapath/verdicts.h"

#include <netinet/in.h>
#include <spdlog/spdlog.h>

#include <chrono>
#include <string>

#include "datapath/datapath.h"
#include "datapath/kernel_flow.h"
#include "telemetry/hook_trace.h"

namespace ramjet::datapath {

namespace {
void trace(const ConnectionInfo& info, const char* hook, const std::string& decision,
           const std::string& detail) {
  if (!telemetry::hook_trace().enabled()) return;
  telemetry::hook_trace().record(
      {0, std::string(hook) + ".kernel", info.id, info.endpoint, decision, detail, {}});
}
}  // namespace

void apply_kernel_verdict(Datapath* dp, const ConnectionInfo& info,
                          const std::optional<KernelVerdict>& verdict, const char* hook) {
  if (!verdict) return;
  if (info.proxied_by) {
    // The client came in a PROXY header: its packets reach this host from the balancer,
    // so a verdict on the client's address (or its flow) would act on nothing, and one on
    // the balancer would hit every client behind it. Neither is what the hook meant.
    spdlog::info("flow {}: {} asked for a kernel verdict, but the client {} came through a "
                 "PROXY header from {}: skipped",
                 info.id, hook, info.client.to_string(), info.proxied_by->to_string());
    trace(info, hook, "skipped", "client behind a PROXY header");
    return;
  }
  std::uint32_t tag =
      std::string_view(hook).starts_with("egress") ? kBlockTagEgressHook : kBlockTagIngressHook;
  auto duration = std::chrono::duration_cast<std::chrono::milliseconds>(verdict->duration);
  if (verdict->kind == KernelVerdict::Kind::kBlockSource) {
    IpAddress client = info.client.ip().unmapped();
    Cidr prefix = verdict->prefix ? *verdict->prefix
                                  : Cidr(client, static_cast<std::uint8_t>(client.size() * 8));
    std::string detail =
        prefix.to_string() + " for " + std::to_string(verdict->duration.count()) + "s";
    if (!dp) {
      spdlog::info("flow {}: {} asked to block {} in the kernel, but the datapath is off", info.id,
                   hook, detail);
      trace(info, hook, "skipped", detail);
      return;
    }
    auto r = dp->block(prefix, duration, tag);
    if (!r.ok())
      spdlog::warn("flow {}: {}", info.id, r.error().message);
    else
      spdlog::info("flow {}: {} blocked {} in the kernel", info.id, hook, detail);
    trace(info, hook, r.ok() ? "block_source" : "failed", detail);
    return;
  }
  IpAddress src = info.client.ip().unmapped();
  IpAddress dst = info.local.ip().unmapped();
  std::string detail = src.to_string() + " -> " + dst.to_string() + ":" +
                       std::to_string(info.local.port()) + "/tcp for " +
                       std::to_string(verdict->duration.count()) + "s";
  if (!dp) {
    spdlog::info("flow {}: {} asked to fast-path {}, but the datapath is off", info.id, hook,
                 detail);
    trace(info, hook, "skipped", detail);
    return;
  }
  auto r = dp->set_class(src, dst, IPPROTO_TCP, info.local.port(), RAMJET_ACTION_FASTPATH, duration,
                         tag);
  if (!r.ok())
    spdlog::warn("flow {}: {}", info.id, r.error().message);
  else
    spdlog::info("flow {}: {} fast-paths {}", info.id, hook, detail);
  trace(info, hook, r.ok() ? "fastpath_class" : "failed", detail);
}

}  // namespace ramjet::datapath
