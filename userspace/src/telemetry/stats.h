// Engine counters, declared once. The same list feeds the admin API, Prometheus
// (telemetry/engine_metrics.cc), the logs and the tests, which assert on these names.
//
// Every counter is kept per worker and per endpoint: each (worker, endpoint) pair
// has its own cache-line-aligned row written only by that worker, so counting is a
// relaxed add with no sharing, and readers sum rows per endpoint or in total.
#pragma once

#include <array>
#include <atomic>
#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <vector>

namespace ramjet::telemetry {

// How a value behaves over time, which decides its Prometheus type and name.
enum class CounterKind : std::uint8_t {
  kCounter,  // only goes up; exported as ramjet_<metric>_total
  kGauge,    // goes up and down; exported as ramjet_<metric>
};

// X(name, kind, metric, help). `name` is the stable key of the admin API and the
// tests; `metric` is the Prometheus base name (units last, e.g. `_bytes`).
#define RAMJET_ENGINE_COUNTERS(X)                                                                  \
  X(connections_accepted, kCounter, connections_accepted, "Downstream connections accepted")       \
  X(connections_active, kGauge, connections_active, "Downstream connections open now")             \
  X(connections_closed, kCounter, connections_closed,                                              \
    "Downstream connections closed, for any reason")                                               \
  X(connections_rejected, kCounter, connections_rejected,                                          \
    "Connections closed at once: server.max_connections reached")                                  \
  X(accept_paused, kCounter, accept_paused,                                                        \
    "Times accepting paused because file descriptors ran out")                                     \
  X(ingress_blocked, kCounter, ingress_blocked, "Connections an IngressHook blocked")              \
  /* proxy_protocol_<reason>: one per proxy_protocol::Reason, in its order (the proxy layer */   \
  /* static_asserts the names) */                                                               \
  X(proxy_protocol_headers, kCounter, proxy_protocol_headers,                                    \
    "Connections that began with an accepted PROXY protocol header")                           \
  X(proxy_protocol_bad_signature, kCounter, proxy_protocol_bad_signature,                                    \
    "Connections closed by PROXY protocol: neither a v1 nor a v2 signature")                           \
  X(proxy_protocol_version_not_allowed, kCounter, proxy_protocol_version_not_allowed,                                    \
    "Connections closed by PROXY protocol: a version not in proxy_protocol.versions")                           \
  X(proxy_protocol_v1_too_long, kCounter, proxy_protocol_v1_too_long,                                    \
    "Connections closed by PROXY protocol: a v1 line without CRLF within 107 bytes")                           \
  X(proxy_protocol_v1_malformed, kCounter, proxy_protocol_v1_malformed,                                    \
    "Connections closed by PROXY protocol: a malformed v1 line")                           \
  X(proxy_protocol_v2_bad_version, kCounter, proxy_protocol_v2_bad_version,                                    \
    "Connections closed by PROXY protocol: a v2 version nibble other than 2")                           \
  X(proxy_protocol_v2_bad_command, kCounter, proxy_protocol_v2_bad_command,                                    \
    "Connections closed by PROXY protocol: a v2 command other than LOCAL or PROXY")                           \
  X(proxy_protocol_v2_bad_family, kCounter, proxy_protocol_v2_bad_family,                                    \
    "Connections closed by PROXY protocol: an unknown v2 address family or transport")                           \
  X(proxy_protocol_v2_oversized, kCounter, proxy_protocol_v2_oversized,                                    \
    "Connections closed by PROXY protocol: a v2 header over the length limit")                           \
  X(proxy_protocol_v2_bad_address_length, kCounter, proxy_protocol_v2_bad_address_length,                                    \
    "Connections closed by PROXY protocol: a v2 address block too short for its family")                           \
  X(proxy_protocol_v2_tlv_truncated, kCounter, proxy_protocol_v2_tlv_truncated,                                    \
    "Connections closed by PROXY protocol: a v2 TLV running past the header")                           \
  X(proxy_protocol_v2_bad_tlv, kCounter, proxy_protocol_v2_bad_tlv,                                    \
    "Connections closed by PROXY protocol: a v2 TLV of a wrong size, or repeated")                           \
  X(proxy_protocol_v2_bad_checksum, kCounter, proxy_protocol_v2_bad_checksum,                                    \
    "Connections closed by PROXY protocol: a v2 header whose CRC32C did not match")                           \
  X(proxy_protocol_untrusted_peer, kCounter, proxy_protocol_untrusted_peer,                                    \
    "Connections closed by PROXY protocol: a header (or, in required mode, a connection) from a peer not in trusted")                           \
  X(proxy_protocol_truncated, kCounter, proxy_protocol_truncated,                                    \
    "Connections closed by PROXY protocol: the peer closed inside the header")                           \
  X(proxy_protocol_timeout, kCounter, proxy_protocol_timeout,                                    \
    "Connections closed by PROXY protocol: no complete header within proxy_protocol.timeout")                           \
  X(proxy_protocol_blocked_by_hook, kCounter, proxy_protocol_blocked_by_hook,                                    \
    "Connections closed by PROXY protocol: a ProxyProtocolConnectionHook blocked the connection")                           \
  X(egress_blocked, kCounter, egress_blocked, "Connections an EgressHook blocked")                 \
  X(egress_refused_private, kCounter, egress_refused_private,                                      \
    "Connections the egress guard refused (private ranges)")                                       \
  X(egress_refused_self, kCounter, egress_refused_self,                                            \
    "Flows of a transparent endpoint addressed to the endpoint itself (relaying would loop)")      \
  X(dns_queries, kCounter, dns_queries, "DNS questions sent (A and AAAA count separately)")        \
  X(dns_cache_hits, kCounter, dns_cache_hits, "Name resolutions answered from the cache")          \
  X(dns_cache_misses, kCounter, dns_cache_misses, "Name resolutions that needed the network")      \
  X(dns_failures, kCounter, dns_failures, "Name resolutions that failed")                          \
  X(dns_fallback_used, kCounter, dns_fallback_used, "Questions re-asked of the fallback servers")  \
  X(connect_attempts, kCounter, connect_attempts,                                                  \
    "Upstream connection attempts (one per address tried)")                                        \
  X(connect_failures, kCounter, connect_failures,                                                  \
    "Connections for which every upstream attempt failed")                                         \
  X(connect_timeouts, kCounter, connect_timeouts, "Connections whose upstream connect timed out")  \
  X(idle_timeouts, kCounter, idle_timeouts, "Connections closed for idleness")                     \
  X(max_lifetime_closes, kCounter, max_lifetime_closes,                                            \
    "Connections closed at endpoint.max_lifetime")                                                 \
  X(drain_forced_closes, kCounter, drain_forced_closes,                                            \
    "Connections closed because the drain deadline passed")                                        \
  X(bytes_from_client, kCounter, downstream_received_bytes,                                        \
    "Bytes relayed from downstream to upstream")                                                   \
  X(bytes_to_client, kCounter, downstream_sent_bytes, "Bytes relayed from upstream to downstream") \
  X(relay_directions_spliced, kCounter, relay_directions_spliced,                                  \
    "Relay directions that relay: auto moved to splice (they carried bulk)")                      \
  X(http_requests, kCounter, http_requests,                                                        \
    "HTTP requests received on http endpoints (CONNECT included)")                                 \
  X(http_connect_tunnels, kCounter, http_connect_tunnels, "CONNECT tunnels established")           \
  X(upstream_reused, kCounter, upstream_reused,                                                    \
    "Requests sent on an idle keep-alive upstream connection")                                     \
  X(upstream_retries, kCounter, upstream_retries,                                                  \
    "Requests sent again on a new connection: the pooled one was closed unanswered")               \
  X(h2_connections, kCounter, h2_connections, "HTTP/2 client connections (h2 and h2c)")     \
  X(h2_streams, kCounter, h2_streams, "HTTP/2 request streams opened by clients")           \
  X(h2_rapid_resets, kCounter, h2_rapid_resets,                                              \
    "HTTP/2 connections sent GOAWAY for cancelling streams faster than the limit")           \
  X(h2_continuation_floods, kCounter, h2_continuation_floods,                                \
    "HTTP/2 connections closed for too many CONTINUATION frames in one header block")        \
  X(h2_settings_floods, kCounter, h2_settings_floods,                                        \
    "HTTP/2 connections closed for sending SETTINGS faster than the limit")                  \
  X(h2_ping_floods, kCounter, h2_ping_floods,                                                \
    "HTTP/2 connections closed for sending PING faster than the limit")                      \
  X(h2_header_lists_too_large, kCounter, h2_header_lists_too_large,                          \
    "HTTP/2 requests answered 431: header list over http.max_head or http.max_fields")       \
  X(h2_refused_streams, kCounter, h2_refused_streams,                                        \
    "HTTP/2 streams refused: more than http.h2_max_concurrent_streams open")                 \
  X(h2_malformed_requests, kCounter, h2_malformed_requests,                                  \
    "HTTP/2 streams reset for malformed fields (pseudo-headers, connection fields, case)")   \
  X(h2_content_length_mismatches, kCounter, h2_content_length_mismatches,                    \
    "HTTP/2 streams reset: DATA disagreeing with content-length")                            \
  X(h2_protocol_errors, kCounter, h2_protocol_errors,                                        \
    "HTTP/2 connections ended for other protocol errors")                                    \
  X(http_client_errors, kCounter, http_client_errors,                                              \
    "Requests the proxy refused itself: 4xx, 501, 505")                                            \
  X(http_upstream_errors, kCounter, http_upstream_errors,                                          \
    "Requests failed upstream, answered 502 or 504 by the proxy")                                  \
  X(http_body_aborts, kCounter, http_body_aborts,                                                  \
    "Bodies whose chunk framing failed after their head was forwarded (receiver reset)")     \
  X(tls_handshakes, kCounter, tls_handshakes, "TLS handshakes completed with clients")            \
  X(tls_resumed, kCounter, tls_resumed, "Client TLS handshakes that resumed a session (ticket)")  \
  X(tls_failed_no_certificate, kCounter, tls_failed_no_certificate,                              \
    "TLS handshakes refused: no certificate for the requested name (strict_sni)")              \
  X(tls_failed_no_shared_cipher, kCounter, tls_failed_no_shared_cipher,                          \
    "TLS handshakes failed: no shared protocol version, cipher or group")                      \
  X(tls_failed_client_certificate, kCounter, tls_failed_client_certificate,                      \
    "TLS handshakes failed: the client certificate was missing or did not verify")             \
  X(tls_failed_timeout, kCounter, tls_failed_timeout,                                            \
    "TLS handshakes cut at tls.handshake_timeout")                                             \
  X(tls_failed_protocol, kCounter, tls_failed_protocol,                                          \
    "TLS handshakes failed otherwise: malformed records, unexpected messages, peer alerts")     \
  X(upstream_tls_certificate_errors, kCounter, upstream_tls_certificate_errors,                  \
    "Upstream TLS handshakes failed: the origin's certificate did not verify")                 \
  X(upstream_tls_protocol_errors, kCounter, upstream_tls_protocol_errors,                        \
    "Upstream TLS handshakes failed otherwise")                                                \
  X(upstream_h2_connections, kCounter, upstream_h2_connections,                                  \
    "HTTP/2 connections opened to upstreams (the origin chose h2 by ALPN)")                    \
  X(upstream_h2_streams, kCounter, upstream_h2_streams,                                          \
    "Requests sent to upstreams as HTTP/2 streams")                                            \
  X(upstream_h2_refused, kCounter, upstream_h2_refused,                                          \
    "HTTP/2 upstream streams the origin did not process (REFUSED_STREAM, above a GOAWAY)")     \
  X(upstream_h2_goaways, kCounter, upstream_h2_goaways, "GOAWAY frames received from upstreams")     \
  X(udp_sessions_opened, kCounter, udp_sessions_opened,                                          \
    "UDP sessions opened (a new client address and port on a udp endpoint)")                   \
  X(udp_sessions_active, kGauge, udp_sessions_active, "UDP sessions open now")                 \
  X(udp_sessions_refused, kCounter, udp_sessions_refused,                                        \
    "Datagrams of new UDP clients dropped: udp.max_sessions sessions were open")               \
  X(udp_sessions_idle_closed, kCounter, udp_sessions_idle_closed,                                \
    "UDP sessions closed after udp.idle_timeout without a datagram")                           \
  X(udp_datagrams_from_client, kCounter, udp_datagrams_from_client,                              \
    "Datagrams relayed from UDP clients to upstreams")                                         \
  X(udp_datagrams_to_client, kCounter, udp_datagrams_to_client,                                  \
    "Datagrams relayed from upstreams to UDP clients")                                         \
  X(udp_bytes_from_client, kCounter, udp_received_bytes,                                         \
    "Payload bytes relayed from UDP clients to upstreams")                                     \
  X(udp_bytes_to_client, kCounter, udp_sent_bytes,                                               \
    "Payload bytes relayed from upstreams to UDP clients")                                     \
  /* udp_dropped_<reason>: one per proxy::UdpDrop, in its order (static_asserted) */           \
  X(udp_dropped_blocked, kCounter, udp_dropped_blocked,                                          \
    "Datagrams dropped: their session was refused by a hook, the egress guard or DNS")         \
  X(udp_dropped_setup_queue, kCounter, udp_dropped_setup_queue,                                  \
    "Datagrams dropped: more than udp.setup_queue arrived while the session was set up")       \
  X(udp_dropped_proxy_protocol, kCounter, udp_dropped_proxy_protocol,                            \
    "Datagrams dropped: no acceptable PROXY v2 header (reason in proxy_protocol_<reason>)")    \
  X(udp_dropped_truncated, kCounter, udp_dropped_truncated,                                      \
    "Datagrams dropped: larger than the receive buffer (64 KiB)")                              \
  X(udp_dropped_send_error, kCounter, udp_dropped_send_error,                                    \
    "Datagrams dropped: the kernel refused to send them (buffer full, ICMP error)") \
  X(udp_sessions_escalated, kCounter, udp_sessions_escalated,                                    \
    "UDP sessions of flows the datapath escalated (keyed by their original destination)")      \
  X(udp_reply_socket_failed, kCounter, udp_reply_socket_failed,                                  \
    "Escalated UDP sessions refused: no reply socket on the original destination")             \
  X(udp_icmp_errors, kCounter, udp_icmp_errors,                                                  \
    "ICMP errors about an escalated UDP session's replies, read from its reply socket")        \
  X(udp_gso_sends, kCounter, udp_gso_sends,                                                      \
    "Sends to UDP upstreams with UDP_SEGMENT: each carried two or more datagrams (GSO)")       \
  X(udp_gso_datagrams, kCounter, udp_gso_datagrams,                                              \
    "Datagrams relayed to UDP upstreams inside GSO sends")                                     \
  X(udp_gro_datagrams, kCounter, udp_gro_datagrams,                                              \
    "Datagrams that arrived coalesced by the kernel (UDP_GRO) and were split at their ends")   \
  X(connect_udp_tunnels, kCounter, connect_udp_tunnels,                                          \
    "connect-udp tunnels established (RFC 9298: 101 on HTTP/1.1, 200 on HTTP/2 and 3)")          \
  X(connect_udp_tunnels_active, kGauge, connect_udp_tunnels_active,                              \
    "connect-udp tunnels open now")                                                             \
  X(connect_udp_idle_closed, kCounter, connect_udp_idle_closed,                                  \
    "connect-udp tunnels closed after connect_udp.idle_timeout without a datagram")             \
  X(connect_udp_datagrams_from_client, kCounter, connect_udp_datagrams_from_client,              \
    "Datagrams sent to UDP targets from connect-udp clients' DATAGRAM capsules")               \
  X(connect_udp_datagrams_to_client, kCounter, connect_udp_datagrams_to_client,                  \
    "Datagrams from UDP targets sent to connect-udp clients as DATAGRAM capsules")             \
  X(connect_udp_skipped_capsules, kCounter, connect_udp_skipped_capsules,                        \
    "Capsules of types other than DATAGRAM that connect-udp clients sent (skipped)")            \
  X(connect_udp_skipped_datagrams, kCounter, connect_udp_skipped_datagrams,                      \
    "DATAGRAM capsules of a context ID other than 0 that connect-udp clients sent (skipped)")   \
  X(connect_udp_dropped_send_error, kCounter, connect_udp_dropped_send_error,                    \
    "Datagrams of connect-udp clients dropped: the kernel refused to send them")               \
  X(connect_udp_quic_datagrams_from_client, kCounter, connect_udp_quic_datagrams_from_client,    \
    "Datagrams sent to UDP targets from HTTP/3 datagrams in QUIC DATAGRAM frames (RFC 9297)")  \
  X(connect_udp_quic_datagrams_to_client, kCounter, connect_udp_quic_datagrams_to_client,        \
    "Datagrams from UDP targets sent to HTTP/3 clients in QUIC DATAGRAM frames (RFC 9297)")    \
  X(connect_udp_quic_datagrams_dropped_too_large, kCounter,                                      \
    connect_udp_quic_datagrams_dropped_too_large,                                               \
    "Datagrams from UDP targets dropped: too large for a QUIC DATAGRAM frame on the path")      \
  X(connect_udp_quic_datagrams_dropped_queue_full, kCounter,                                     \
    connect_udp_quic_datagrams_dropped_queue_full,                                              \
    "Datagrams from UDP targets dropped: 64 QUIC DATAGRAM frames already waited to be sent")    \
  X(quic_h3_datagrams_dropped_malformed, kCounter, quic_h3_datagrams_dropped_malformed,          \
    "QUIC DATAGRAM frames dropped: no valid Quarter Stream ID, or no Context ID after it")      \
  X(quic_h3_datagrams_dropped_unknown_stream, kCounter, quic_h3_datagrams_dropped_unknown_stream, \
    "QUIC DATAGRAM frames dropped: their stream is no established connect-udp tunnel")          \
  X(quic_h3_datagrams_dropped_unknown_context, kCounter,                                         \
    quic_h3_datagrams_dropped_unknown_context,                                                  \
    "QUIC DATAGRAM frames dropped: a Context ID other than 0 (RFC 9298 4)")                     \
  /* connect_udp_malformed_<reason>: one per http::CapsuleError, in its order (static_asserted) */ \
  X(connect_udp_malformed, kCounter, connect_udp_malformed,                                      \
    "connect-udp tunnels closed for a malformed capsule stream (reason in the next counters)")  \
  X(connect_udp_malformed_capsule_too_large, kCounter, connect_udp_malformed_capsule_too_large,  \
    "connect-udp tunnels closed: a capsule longer than 65543 bytes")                            \
  X(connect_udp_malformed_truncated_capsule, kCounter, connect_udp_malformed_truncated_capsule,  \
    "connect-udp tunnels closed: the client's stream ended inside a capsule")                   \
  X(connect_udp_malformed_datagram_truncated, kCounter,                                          \
    connect_udp_malformed_datagram_truncated,                                                   \
    "connect-udp tunnels closed: a DATAGRAM capsule without a whole Context ID")                \
  X(connect_udp_malformed_udp_payload_too_long, kCounter,                                        \
    connect_udp_malformed_udp_payload_too_long,                                                 \
    "connect-udp tunnels closed: a UDP payload over 65527 bytes")                                \
  X(quic_connections_accepted, kCounter, quic_connections_accepted,                              \
    "QUIC connections accepted (an Initial of a supported version; docs/quic.md)")             \
  X(quic_connections_refused, kCounter, quic_connections_refused,                                \
    "QUIC Initials dropped: quic.max_connections connections were open, or the handshake "    \
    "could not start")                                                                         \
  X(quic_version_negotiations, kCounter, quic_version_negotiations,                              \
    "Version Negotiation packets sent (a client offered a QUIC version we do not speak)")      \
  X(quic_stateless_resets, kCounter, quic_stateless_resets,                                      \
    "Stateless Resets sent (a short-header packet for no connection of this worker)")          \
  X(quic_retries, kCounter, quic_retries,                                                        \
    "Retry packets sent: a new client was asked to prove its address (quic.retry)")            \
  X(quic_invalid_tokens, kCounter, quic_invalid_tokens,                                          \
    "QUIC Initials dropped for a Retry token that failed (forged, expired, another address)")  \
  X(quic_h3_requests, kCounter, quic_h3_requests,                                                \
    "HTTP/3 requests started (each runs through the request pipeline, as an HTTP/2 stream)")   \
  /* quic_dropped_<reason>: one per quic::DropReason, in its order (proxy/quic_onramp.cc) */   \
  X(quic_dropped_malformed, kCounter, quic_dropped_malformed,                                    \
    "QUIC datagrams dropped: no QUIC header could be read")                                    \
  X(quic_dropped_short_initial, kCounter, quic_dropped_short_initial,                            \
    "QUIC datagrams dropped: an Initial (or unknown version) in a datagram under 1200 bytes")  \
  X(quic_dropped_not_initial, kCounter, quic_dropped_not_initial,                                \
    "QUIC datagrams dropped: a long header other than Initial for no known connection")        \
  X(quic_dropped_too_small_for_reset, kCounter, quic_dropped_too_small_for_reset,                \
    "QUIC datagrams dropped: a short header for no connection, too small to answer")           \
  X(quic_dropped_version_negotiation, kCounter, quic_dropped_version_negotiation,                \
    "QUIC datagrams dropped: Version Negotiation packets (servers ignore them)")               \
  X(ip_packets, kCounter, ip_packets, "Packets read from an ip endpoint's TUN device")              \
  X(ip_bytes, kCounter, ip_bytes, "Bytes of the packets read from the TUN device")                   \
  X(ip_forwarded, kCounter, ip_forwarded, "Packets sent on through the IP off-ramp")                 \
  X(ip_flows_opened, kCounter, ip_flows_opened, "IP flows seen (IpFlowHook::handle_flow calls)")     \
  X(ip_flows_active, kGauge, ip_flows_active, "IP flows tracked now")                                \
  X(ip_flows_closed, kCounter, ip_flows_closed, "IP flows forgotten (idle or shutdown)")             \
  X(ip_flows_refused, kCounter, ip_flows_refused,                                                    \
    "Packets of new IP flows dropped because max_flows were tracked")                               \
  X(ip_flows_dropped, kCounter, ip_flows_dropped, "IP flows an IpFlowHook decided to drop")          \
  X(ip_dropped_by_hook, kCounter, ip_dropped_by_hook, "Packets of flows an IpFlowHook dropped")      \
  X(ip_dropped_by_packet_hook, kCounter, ip_dropped_by_packet_hook,                                  \
    "Packets IpFlowHook::handle_packet dropped (or left unparsable)")                               \
  X(ip_dropped_pending, kCounter, ip_dropped_pending,                                                \
    "Packets dropped while their flow waited for handle_flow (over 64 queued)")                     \
  X(ip_dropped_too_short, kCounter, ip_dropped_too_short, "TUN packets shorter than an IP header")   \
  X(ip_dropped_bad_version, kCounter, ip_dropped_bad_version, "TUN packets neither IPv4 nor IPv6")   \
  X(ip_dropped_bad_header_length, kCounter, ip_dropped_bad_header_length,                           \
    "TUN packets whose IPv4 IHL is below 5 or past the packet")                                     \
  X(ip_dropped_bad_total_length, kCounter, ip_dropped_bad_total_length,                             \
    "TUN packets whose IP length field is longer than the packet")                                  \
  X(ip_dropped_bad_extension_header, kCounter, ip_dropped_bad_extension_header,                     \
    "TUN packets whose IPv6 extension headers are cut off or too many")                             \
  X(ip_dropped_truncated_l4_header, kCounter, ip_dropped_truncated_l4_header,                       \
    "TUN packets whose TCP, UDP or ICMP header is cut off")                                         \
  X(ip_dropped_not_routable, kCounter, ip_dropped_not_routable,                                     \
    "TUN packets to a multicast, broadcast or link-local address")                                  \
  X(ip_offramp_errors, kCounter, ip_offramp_errors, "Packets the IP off-ramp could not send") \
  X(ip_flows_decapsulated, kCounter, ip_flows_decapsulated,                                         \
    "IP flows an IpFlowHook decapsulated: handed to a transparent tcp, http or udp endpoint")       \
  X(ip_decapsulate_refused, kCounter, ip_decapsulate_refused,                                       \
    "IP flows dropped instead of decapsulated: not TCP or UDP, no such transparent endpoint for "   \
    "the flow's protocol, or the hand-off table full")                                              \
  X(ip_decapsulated, kCounter, ip_decapsulated,                                                     \
    "Packets of decapsulated flows written back into the TUN device for the host's stack")          \
  X(ip_decapsulate_errors, kCounter, ip_decapsulate_errors,                                         \
    "Packets of decapsulated flows the TUN device did not take")                                     \
  X(ip_icmp_errors_decapsulated, kCounter, ip_icmp_errors_decapsulated,                             \
    "ICMP errors about a decapsulated UDP session's replies, handed to the host for the session")

enum class Counter : unsigned {
#define RAMJET_X(name, kind, metric, help) name,
  RAMJET_ENGINE_COUNTERS(RAMJET_X)
#undef RAMJET_X
      kCount
};

inline constexpr std::size_t kCounterCount = static_cast<std::size_t>(Counter::kCount);

inline constexpr std::array<std::string_view, kCounterCount> kCounterNames = {
#define RAMJET_X(name, kind, metric, help) #name,
    RAMJET_ENGINE_COUNTERS(RAMJET_X)
#undef RAMJET_X
};

// The `i`-th counter after `first`: a reason's counter in a run checked by counters_follow.
constexpr Counter counter_after(Counter first, std::size_t i) {
  return static_cast<Counter>(static_cast<std::size_t>(first) + 1 + i);
}

// True when the counters right after `first` are `prefix` + each of `names`, in order: how a
// list of reasons declared in another layer is checked (static_assert) against its counters.
constexpr bool counters_follow(Counter first, std::string_view prefix,
                               std::span<const std::string_view> names) {
  const std::size_t at = static_cast<std::size_t>(first) + 1;
  if (at + names.size() > kCounterCount) return false;
  for (std::size_t i = 0; i < names.size(); ++i) {
    const std::string_view name = kCounterNames[at + i];
    if (name.substr(0, prefix.size()) != prefix || name.substr(prefix.size()) != names[i])
      return false;
  }
  return true;
}

inline constexpr std::array<CounterKind, kCounterCount> kCounterKinds = {
#define RAMJET_X(name, kind, metric, help) CounterKind::kind,
    RAMJET_ENGINE_COUNTERS(RAMJET_X)
#undef RAMJET_X
};

inline constexpr std::array<std::string_view, kCounterCount> kCounterMetrics = {
#define RAMJET_X(name, kind, metric, help) #metric,
    RAMJET_ENGINE_COUNTERS(RAMJET_X)
#undef RAMJET_X
};

inline constexpr std::array<std::string_view, kCounterCount> kCounterHelp = {
#define RAMJET_X(name, kind, metric, help) help,
    RAMJET_ENGINE_COUNTERS(RAMJET_X)
#undef RAMJET_X
};

// The counters of one endpoint on one worker, written only by that worker (relaxed),
// read by anyone.
struct alignas(64) CounterRow {
  std::array<std::atomic<std::int64_t>, kCounterCount> values{};

  void add(Counter c, std::int64_t n = 1) {
    values[static_cast<unsigned>(c)].fetch_add(n, std::memory_order_relaxed);
  }
  std::int64_t get(Counter c) const {
    return values[static_cast<unsigned>(c)].load(std::memory_order_relaxed);
  }
};

// One worker's rows, one per endpoint in config order.
class WorkerStats {
 public:
  WorkerStats(CounterRow* rows, std::size_t endpoints) : rows_(rows), endpoints_(endpoints) {}
  CounterRow& endpoint(std::size_t index) { return rows_[index]; }
  std::size_t endpoint_count() const { return endpoints_; }

 private:
  CounterRow* rows_;
  std::size_t endpoints_;
};

// Every counter summed over workers: per endpoint (config order) and in total.
struct StatsSnapshot {
  std::vector<std::string> endpoints;
  std::vector<std::array<std::int64_t, kCounterCount>> per_endpoint;

  std::int64_t total(Counter c) const {
    std::int64_t sum = 0;
    for (const auto& row : per_endpoint) sum += row[static_cast<unsigned>(c)];
    return sum;
  }
};

// All workers' rows. configure() runs once at start-up, before any worker or reader.
class StatsRegistry {
 public:
  static constexpr unsigned kMaxWorkers = 256;

  void configure(unsigned workers, std::vector<std::string> endpoints);
  WorkerStats worker(unsigned i) {
    return WorkerStats(rows_.get() + std::size_t(i) * endpoints_.size(), endpoints_.size());
  }
  unsigned worker_count() const { return workers_; }
  const std::vector<std::string>& endpoints() const { return endpoints_; }

  std::int64_t total(Counter c) const;
  StatsSnapshot snapshot() const;

 private:
  unsigned workers_ = 0;
  std::vector<std::string> endpoints_;
  std::unique_ptr<CounterRow[]> rows_;  // [worker * endpoints + endpoint]
};

StatsRegistry& stats();

}  // namespace ramjet::telemetry
