// One worker's part of an `onramp: ip` endpoint (docs/ip_onramp.md): it reads the
// packets of its TUN queue, groups them into flows, asks IpFlowHook once per flow,
// and forwards (the IP off-ramp: a raw socket, routed by the host), drops, or passes
// each packet through handle_packet first. Flows end after the endpoint's
// flow_idle_timeout without packets, or when the worker drains.
#pragma once

#include <cstddef>
#include <cstdint>
#include <deque>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <unordered_map>
#include <vector>

#include "proxy/ip_packet.h"
#include "proxy/worker_context.h"
#include "ramjet/hooks/ip.h"
#include "ramjet/task.h"
#include "telemetry/stats.h"

namespace ramjet::proxy {

// A connection (IPPROTO_TCP) or UDP session (IPPROTO_UDP) of a transparent endpoint that
// came from an IP flow an ip endpoint decapsulated: sets info.decapsulated_from to that
// flow's id and records the hand-off in the hook trace as `ip.handoff`, under info.id,
// so that the chain (ip flow -> this endpoint's connection) can be followed. Anything
// else is left as it is. Needs info.client, info.local (the original destination), info.id.
void note_decapsulated(WorkerContext& wc, ConnectionInfo& info, std::uint8_t protocol);

class IpOnramp {
 public:
  // Takes `tun_fd` (a queue of the endpoint's TUN device) and closes it at the end.
  IpOnramp(WorkerContext& wc, std::size_t endpoint_index, int tun_fd,
           std::function<FlowId()> next_id);
  ~IpOnramp();
  IpOnramp(const IpOnramp&) = delete;
  IpOnramp& operator=(const IpOnramp&) = delete;

  // Until stop(): packets, decisions, idle expiry. Closes every flow on the way out.
  Task<void> run();
  void stop();

  // Handles one packet as read from the TUN device.
  void on_packet(std::span<std::uint8_t> packet);

 private:
  struct Flow {
    IpFlow info;
    std::shared_ptr<void> ctx;
    bool decided = false;
    IpFlowDecision decision;
    std::deque<std::vector<std::uint8_t>> waiting;  // while handle_flow runs
    IpFlowStats stats;
    bool handed_off = false;  // in the TUN hand-off's flow table (decapsulated)
    runtime::Clock::time_point started;
    runtime::Clock::time_point last_packet;
  };
  using FlowMap = std::unordered_map<IpFlowKey, std::unique_ptr<Flow>, IpFlowKeyHash>;

  Task<void> read_loop();
  Task<void> expiry_loop();
  Task<void> decide(Flow* flow);
  void deliver(Flow& flow, std::uint8_t* data, std::size_t len);
  void send_out(Flow& flow, const std::uint8_t* data, std::size_t len);
  // Carries out a decapsulate decision: the flow in the hand-off table, or a reason
  // to drop it instead.
  std::optional<std::string> hand_off(Flow& flow);
  void write_back(Flow& flow, const std::uint8_t* data, std::size_t len);
  // An ICMP error about a decapsulated UDP session's reply: written back for the host
  // to deliver to the session. False for any other packet (it is a flow of its own).
  bool hand_off_icmp_error(std::span<const std::uint8_t> packet, const ParsedIp& ip);
  void close_flow(FlowMap::iterator it);

  WorkerContext& wc_;
  const config::Endpoint& ep_;
  telemetry::CounterRow& counters_;
  int tun_fd_;
  std::function<FlowId()> next_id_;
  int pending_decisions_ = 0;  // decide() coroutines still running
  int offramp_[2] = {-1, -1};  // raw sockets: [IPv4, IPv6]
  FlowMap flows_;
  bool stopping_ = false;
  runtime::CancelSlot poll_slot_;
  runtime::CancelSlot sleep_slot_;
  std::vector<std::uint8_t> buf_;
};

}  // namespace ramjet::proxy
