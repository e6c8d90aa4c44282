// UdpSession: one client (address and port) of an `onramp: udp` endpoint, from its first
// datagram until udp.idle_timeout passes without one either way (docs/udp.md).
//
//   first datagram -> [PROXY v2 hook] -> IngressHook -> EgressHook (handle_connection,
//   DNS, handle_upstream_ips, guard) -> udp_connect_override -> connected socket ->
//   handle_connection_established -> relaying until idle -> handle_connection_close
//
// A session of a transparent endpoint (an escalated flow) is keyed by its original
// destination, relays to it, and answers the client from it through a reply socket of its
// own (IP_TRANSPARENT, bound to the original destination, connected to the client), which
// also takes the ICMP errors about those replies (docs/udp.md).
//
// Datagrams that arrive while the hooks run wait in a short queue (udp.setup_queue). A
// session its hooks refused stays in the table until idle, dropping its datagrams
// (udp_dropped_blocked), so a blocked client costs no hook call per datagram.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <vector>

#include "proxy/session.h"
#include "proxy/udp_flow_key.h"
#include "proxy/worker_context.h"
#include "ramjet/hooks/connection.h"
#include "ramjet/task.h"

namespace ramjet::proxy {

class UdpOnramp;

class UdpSession final : public Session {
 public:
  UdpSession(UdpOnramp& onramp, telemetry::CounterRow& counters, UdpFlowKey key,
             ConnectionInfo info);
  ~UdpSession() override;

  // The whole life of the session; it leaves the on-ramp's table at the end.
  Task<void> run();
  // A datagram of this client's, received from `peer` (the client itself, or the load
  // balancer that sent it with a PROXY header): relayed, queued or dropped and counted.
  void from_client(std::span<const std::uint8_t> payload, const SocketAddress& peer);
  void force_close(CloseReason why) override;
  // Sends what from_client gathered for the upstream (see out_).
  void flush_upstream();
  // The on-ramp's call once the worker's ring is drained: flush_upstream, and `now` (read
  // once for every session of the batch) is the session's last activity.
  void drained(runtime::Clock::time_point now);

  const UdpFlowKey& key() const { return key_; }

 private:
  enum class Phase : std::uint8_t { kSettingUp, kRelaying, kBlocked };

  // Hooks, DNS and the connected upstream socket; false with close_reason_ set when the
  // session may not go anywhere.
  Task<bool> open_upstream();
  // The endpoint's upstream, or the original destination on a transparent endpoint.
  HostPort upstream_target() const;
  void send_upstream(std::span<const std::uint8_t> payload);
  // Escalated flows: the reply socket on the original destination; false (counted) when
  // it cannot be had.
  bool open_reply_socket();
  // Escalated flows: ICMP errors about the replies (the client's port closed...) end the
  // session; a stray datagram on the reply socket is the client's.
  Task<void> watch_reply_socket();
  // Upstream datagrams to the client until idle or closed.
  Task<void> relay();
  // A refused session: drop the client's datagrams until it is idle.
  Task<void> linger();
  void finish();

  UdpOnramp& onramp_;
  const config::Endpoint& ep_;
  UdpFlowKey key_;
  SocketAddress reply_to_;  // where replies go: the last sender of the client's datagrams
  ConnectionInfo info_;
  std::shared_ptr<void> ctx_;
  ConnectionStats stats_;
  std::unique_ptr<Relay> no_relay_;  // Session::View wants one; datagrams need none
  runtime::Clock::time_point started_;
  runtime::Clock::time_point last_activity_;
  Phase phase_ = Phase::kSettingUp;
  std::vector<std::string> queued_;  // datagrams received while setting up
  int upstream_fd_ = -1;
  int reply_fd_ = -1;  // escalated flows only
  runtime::CancelSlot reply_slot_;
  std::string proxy_header_;  // send_proxy_protocol: before every upstream datagram
  // Datagrams for the upstream gathered while the worker hands over completions (until
  // the ring has nothing more ready: Worker::when_drained), back to back, each with its
  // PROXY header, and their sizes. flush_upstream sends each run of equal sizes in one
  // sendmsg with UDP_SEGMENT (one trip down the stack for all of them), the rest one by one.
  std::string out_;
  std::vector<std::uint16_t> out_sizes_;
  bool marked_ = false;  // in the on-ramp's list of sessions to flush
  enum class TrainResult { kSent, kRefused, kUnsupported };
  TrainResult send_train(const char* data, std::size_t len, std::uint16_t segment);
  bool send_one(const char* data, std::size_t len);
  bool gso_ = true;              // until the kernel refuses UDP_SEGMENT
  std::optional<CloseReason> close_reason_;
  runtime::CancelSlot linger_slot_;
};

}  // namespace ramjet::proxy
