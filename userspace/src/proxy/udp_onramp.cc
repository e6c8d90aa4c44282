#include "proxy/udp_onramp.h"

#include <netinet/in.h>
#include <netinet/udp.h>
#include <spdlog/spdlog.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>

#include "datapath/datapath.h"
#include "proxy/ip_onramp.h"
#include "proxy/proxy_protocol_prologue.h"
#include "proxy/udp_session.h"
#include "proxy_protocol/datagram.h"

namespace ramjet::proxy {
namespace {

namespace pp = ramjet::proxy_protocol;
using telemetry::Counter;

// Provided-buffer groups of udp endpoints: one per endpoint, after the worker's own (1).
constexpr std::uint16_t kFirstGroup = 100;
constexpr unsigned kRingBuffers = 64;
// A buffer holds io_uring_recvmsg_out, the source address and a whole datagram.
constexpr unsigned kRingBufferSize = UdpOnramp::kMaxDatagram + 256;

// An address as the endpoint's socket takes it: a dual-stack IPv6 socket sends to IPv4
// clients through their v4-mapped form.
socklen_t to_socket_address(const SocketAddress& a, int socket_family, sockaddr_storage& ss) {
  if (socket_family == AF_INET6 && a.ip().is_v4()) {
    std::uint8_t mapped[16] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};
    std::memcpy(mapped + 12, a.ip().data(), 4);
    return SocketAddress(IpAddress::from_bytes(IpAddress::Family::kV6, mapped), a.port())
        .to_sockaddr(ss);
  }
  return a.to_sockaddr(ss);
}

// Room for one IP_ORIGDSTADDR or IPV6_ORIGDSTADDR control message and one UDP_GRO.
constexpr unsigned kOrigDstControlLen = CMSG_SPACE(sizeof(sockaddr_in6));
constexpr unsigned kGroControlLen = CMSG_SPACE(sizeof(int));
constexpr unsigned kControlLen = kOrigDstControlLen + kGroControlLen;

// The segment size of a UDP_GRO control message (datagrams of one flow that the kernel
// coalesced: each `size` bytes, the last one maybe shorter), or 0 for any other message.
int gro_segment_size(const cmsghdr* c) {
  if (c->cmsg_level != SOL_UDP || c->cmsg_type != UDP_GRO || c->cmsg_len < CMSG_LEN(sizeof(int)))
    return 0;
  int size = 0;
  std::memcpy(&size, CMSG_DATA(c), sizeof size);
  return size > 0 ? size : 0;
}

// The original destination a control message carries (IP_RECVORIGDSTADDR on a
// transparent endpoint's socket), or nullopt for any other message.
std::optional<SocketAddress> original_destination(const cmsghdr* c) {
  const bool v4 = c->cmsg_level == SOL_IP && c->cmsg_type == IP_ORIGDSTADDR &&
                  c->cmsg_len >= CMSG_LEN(sizeof(sockaddr_in));
  const bool v6 = c->cmsg_level == SOL_IPV6 && c->cmsg_type == IPV6_ORIGDSTADDR &&
                  c->cmsg_len >= CMSG_LEN(sizeof(sockaddr_in6));
  if (!v4 && !v6) return std::nullopt;
  sockaddr_storage ss{};
  const std::size_t len = v4 ? sizeof(sockaddr_in) : sizeof(sockaddr_in6);
  std::memcpy(&ss, CMSG_DATA(c), len);
  return SocketAddress::from_sockaddr(reinterpret_cast<sockaddr*>(&ss),
                                      static_cast<socklen_t>(len));
}

}  // namespace

UdpOnramp::UdpOnramp(WorkerContext& wc, std::size_t endpoint_index, int fd,
                     std::atomic<std::uint32_t>* open_sessions, NextFlowId next_id)
    : wc_(wc),
      ep_(wc.config.endpoints[endpoint_index]),
      counters_(wc.stats.endpoint(endpoint_index)),
      fd_(fd),
      open_sessions_(open_sessions),
      next_id_(next_id),
      scratch_(kBatch * kMaxDatagram) {
  sockaddr_storage ss;
  socklen_t len = sizeof ss;
  if (::getsockname(fd, reinterpret_cast<sockaddr*>(&ss), &len) == 0)
    if (auto a = SocketAddress::from_sockaddr(reinterpret_cast<sockaddr*>(&ss), len)) local_ = *a;
  try {
    ring_ = std::make_unique<runtime::BufferRing>(
        wc.worker, static_cast<std::uint16_t>(kFirstGroup + endpoint_index), kRingBuffers,
        kRingBufferSize);
  } catch (const std::exception& e) {
    spdlog::info("endpoint {}: no provided buffers ({}): plain recvmsg", ep_.name, e.what());
  }
}

UdpOnramp::~UdpOnramp() {
  wc_.worker.forget_drained(this);
}

void UdpOnramp::stop() {
  stopping_ = true;
  wc_.worker.cancel_fd(fd_);
}

Task<void> UdpOnramp::run() {
  bool unsupported = ring_ == nullptr;
  if (!unsupported) co_await receive_multishot(unsupported);
  if (unsupported && !stopping_) co_await receive_plain();
  // The socket goes with the loop: replies of the sessions have nowhere to go.
  std::vector<UdpSession*> left;
  for (auto& [key, s] : sessions_) left.push_back(s);
  for (UdpSession* s : left) s->force_close(CloseReason::kShutdown);
  if (live_ > 0) {
    all_closed_ = std::make_unique<runtime::Event>();
    co_await all_closed_->wait();
  }
  ::close(fd_);
}

Task<void> UdpOnramp::receive_multishot(bool& unsupported) {
  runtime::MultishotRecvmsg ms(wc_.worker, fd_, ring_->group(), sizeof(sockaddr_storage));
  // Escalated datagrams carry where they were going, coalesced ones their segment size:
  // every buffer gets room for both.
  ms.shape()->msg_controllen = kControlLen;
  bool received = false;
  for (;;) {
    if (ms.idle()) {
      if (stopping_) break;
      ms.arm();
    }
    const auto c = co_await ms.next();
    if (c.res < 0) {
      if (ms.armed()) continue;
      if (stopping_ || c.res == -ECANCELED) break;
      if (!received && (c.res == -EINVAL || c.res == -EOPNOTSUPP)) {
        unsupported = true;  // a kernel without multishot recvmsg (before 6.0)
        break;
      }
      // -ENOBUFS: every buffer was in use; they are recycled by now, so arm again.
      if (c.res != -ENOBUFS) spdlog::warn("endpoint {}: recvmsg: {}", ep_.name, strerror(-c.res));
      continue;
    }
    received = true;
    const unsigned id = c.flags >> IORING_CQE_BUFFER_SHIFT;
    std::uint8_t* buf = ring_->buffer(id);
    if (io_uring_recvmsg_out* out = io_uring_recvmsg_validate(buf, c.res, ms.shape())) {
      auto* name = static_cast<sockaddr*>(io_uring_recvmsg_name(out));
      auto* payload = static_cast<std::uint8_t*>(io_uring_recvmsg_payload(out, ms.shape()));
      const unsigned n = io_uring_recvmsg_payload_length(out, c.res, ms.shape());
      const bool truncated = (out->flags & MSG_TRUNC) != 0;
      std::optional<SocketAddress> dst;
      int segment = 0;
      for (cmsghdr* cm = io_uring_recvmsg_cmsg_firsthdr(out, ms.shape()); cm;
           cm = io_uring_recvmsg_cmsg_nexthdr(out, ms.shape(), cm)) {
        if (!dst) dst = original_destination(cm);
        if (segment == 0) segment = gro_segment_size(cm);
      }
      if (auto peer = SocketAddress::from_sockaddr(name, out->namelen))
        on_received(*peer, dst, {payload, n}, segment, truncated);
    }
    ring_->recycle(id);
  }
  // A multishot ends with a last CQE; none may be left in flight when `ms` goes.
  while (!ms.idle()) {
    ms.cancel();
    const auto c = co_await ms.next();
    if (c.res >= 0) ring_->recycle(c.flags >> IORING_CQE_BUFFER_SHIFT);
  }
}

Task<void> UdpOnramp::receive_plain() {
  std::vector<std::uint8_t> buf(kMaxDatagram);
  while (!stopping_) {
    sockaddr_storage from;
    iovec iov{buf.data(), buf.size()};
    alignas(cmsghdr) std::uint8_t control[kControlLen];
    msghdr msg{};
    msg.msg_name = &from;
    msg.msg_namelen = sizeof from;
    msg.msg_iov = &iov;
    msg.msg_iovlen = 1;
    msg.msg_control = control;
    msg.msg_controllen = sizeof control;
    const int n = co_await wc_.worker.recvmsg(fd_, &msg);
    if (n < 0) {
      if (stopping_ || n == -ECANCELED) break;
      continue;
    }
    std::optional<SocketAddress> dst;
    int segment = 0;
    for (cmsghdr* cm = CMSG_FIRSTHDR(&msg); cm; cm = CMSG_NXTHDR(&msg, cm)) {
      if (!dst) dst = original_destination(cm);
      if (segment == 0) segment = gro_segment_size(cm);
    }
    if (auto peer =
            SocketAddress::from_sockaddr(reinterpret_cast<sockaddr*>(&from), msg.msg_namelen))
      on_received(*peer, dst, {buf.data(), static_cast<std::size_t>(n)}, segment,
                  (msg.msg_flags & MSG_TRUNC) != 0);
  }
}

void UdpOnramp::on_received(const SocketAddress& peer,
                            const std::optional<SocketAddress>& original_dst,
                            std::span<const std::uint8_t> data, int segment, bool truncated) {
  if (segment <= 0 || truncated || data.size() <= static_cast<std::size_t>(segment)) {
    on_datagram(peer, original_dst, data, truncated);
    return;
  }
  // Datagrams the kernel coalesced (UDP_GRO): cut at their boundaries, each goes on alone.
  const auto size = static_cast<std::size_t>(segment);
  std::size_t count = 0;
  for (std::size_t off = 0; off < data.size(); off += size, ++count)
    on_datagram(peer, original_dst, data.subspan(off, std::min(size, data.size() - off)), false);
  counters_.add(Counter::udp_gro_datagrams, static_cast<std::int64_t>(count));
}

void UdpOnramp::on_datagram(const SocketAddress& peer,
                            const std::optional<SocketAddress>& original_dst,
                            std::span<const std::uint8_t> data, bool truncated) {
  if (truncated) {
    counters_.add(Counter::udp_dropped_truncated);
    return;
  }
  SocketAddress client = peer;
  std::optional<ProxyHeader> header;
  if (ep_.proxy_protocol.enabled()) {
    pp::DatagramPolicy policy;
    policy.required = ep_.proxy_protocol.mode == config::ProxyProtocolMode::kRequired;
    policy.trusted = ep_.proxy_protocol.trusts(peer.ip());
    ProxyHeader h;
    const pp::DatagramResult r = pp::parse_datagram(data, h, policy);
    if (r.verdict == pp::DatagramVerdict::kDrop) {
      counters_.add(proxy_protocol_counter(r.reason));
      counters_.add(Counter::udp_dropped_proxy_protocol);
      spdlog::debug("endpoint {}: datagram from {} dropped: PROXY v2 {} (at byte {})", ep_.name,
                    peer.to_string(), pp::to_string(r.reason), r.offset);
      return;
    }
    if (r.verdict == pp::DatagramVerdict::kHeader) {
      data = data.subspan(r.payload_offset);
      if (auto c = h.client()) client = *c;
      header = std::move(h);
    }
  }

  // An escalated datagram belongs to the session of its original destination; one sent
  // to the endpoint's own address has none other than that.
  const SocketAddress local = ep_.transparent && original_dst ? *original_dst : local_;
  UdpFlowKey key{client, local};
  if (auto it = sessions_.find(key); it != sessions_.end()) {
    it->second->from_client(data, peer);
    return;
  }
  if (stopping_ || wc_.draining) return;
  const std::uint32_t max = ep_.udp.max_sessions;
  if (open_sessions_->fetch_add(1, std::memory_order_relaxed) >= max) {
    open_sessions_->fetch_sub(1, std::memory_order_relaxed);
    counters_.add(Counter::udp_sessions_refused);
    return;
  }
  ConnectionInfo info;
  info.id = next_id_();
  info.endpoint = ep_.name;
  info.transport = ConnectionInfo::Transport::kUdp;
  info.worker = wc_.worker.index();
  info.endpoint_app_settings = ep_.app.get();
  info.client = client;
  info.local = local;
  if (ep_.transparent) {
    // The kernel flow's id, as for escalated TCP: ramjetctl joins both halves by it.
    std::optional<datapath::FlowEntry> kflow;
    if (wc_.datapath) kflow = wc_.datapath->lookup_flow(client, local, IPPROTO_UDP);
    info.escalated = kflow && kflow->flow.escalated;
    if (info.escalated) info.id = kflow->flow.flow_id;
    // Or a UDP flow an ip endpoint decapsulated (docs/ip_onramp.md): its IP flow's id.
    note_decapsulated(wc_, info, IPPROTO_UDP);
    if (info.decapsulated_from == 0) counters_.add(Counter::udp_sessions_escalated);
  }
  if (header) {
    counters_.add(Counter::proxy_protocol_headers);
    if (header->client()) {
      info.proxied_by = peer;
      // The address the load balancer's client sent to, as for TCP.
      if (header->destination) info.local = *header->destination;
    }
    info.proxy_header = std::make_shared<const ProxyHeader>(std::move(*header));
  }
  auto s = std::make_unique<UdpSession>(*this, counters_, key, std::move(info));
  UdpSession* raw = s.get();
  sessions_.emplace(std::move(key), raw);
  raw->from_client(data, peer);
  ++live_;
  wc_.worker.spawn(drive(std::move(s)));
}

Task<void> UdpOnramp::drive(std::unique_ptr<UdpSession> s) {
  co_await s->run();
  s.reset();
  open_sessions_->fetch_sub(1, std::memory_order_relaxed);
  if (--live_ == 0 && all_closed_) all_closed_->set();
}

void UdpOnramp::forget_pending(UdpSession* s) {
  std::erase(pending_, s);
}

void UdpOnramp::flush_pending() {
  std::vector<UdpSession*> now;
  now.swap(pending_);
  const runtime::Clock::time_point t = runtime::Clock::now();
  for (UdpSession* s : now) s->drained(t);
  now.clear();
  if (pending_.empty()) pending_.swap(now);  // keep the capacity
}

void UdpOnramp::erase(UdpSession* s) {
  auto it = sessions_.find(s->key());
  if (it != sessions_.end() && it->second == s) sessions_.erase(it);
}

std::pair<std::size_t, std::size_t> UdpOnramp::send_to_client(
    const SocketAddress& to, std::span<const std::span<const std::uint8_t>> datagrams, int via) {
  sockaddr_storage ss;
  const socklen_t len = via >= 0 ? 0 : to_socket_address(to, local_.family(), ss);
  mmsghdr msgs[kBatch];
  iovec iov[kBatch];
  const std::size_t n = std::min(datagrams.size(), kBatch);
  for (std::size_t i = 0; i < n; ++i) {
    iov[i] = {const_cast<std::uint8_t*>(datagrams[i].data()), datagrams[i].size()};
    msgs[i] = {};
    msgs[i].msg_hdr.msg_name = via >= 0 ? nullptr : &ss;  // `via` is connected
    msgs[i].msg_hdr.msg_namelen = len;
    msgs[i].msg_hdr.msg_iov = &iov[i];
    msgs[i].msg_hdr.msg_iovlen = 1;
  }
  std::size_t done = 0;
  std::size_t sent = 0;
  std::size_t bytes = 0;
  while (done < n) {
    // Non-blocking: a datagram the socket buffer cannot take now is dropped, as a router
    // would; waiting would stall every other session of this worker.
    const int r = ::sendmmsg(via >= 0 ? via : fd_, msgs + done, static_cast<unsigned>(n - done),
                             MSG_DONTWAIT | MSG_NOSIGNAL);
    if (r <= 0) {
      counters_.add(Counter::udp_dropped_send_error);
      ++done;  // drop the one refused and try the rest
      continue;
    }
    for (int i = 0; i < r; ++i) bytes += datagrams[done + static_cast<std::size_t>(i)].size();
    done += static_cast<std::size_t>(r);
    sent += static_cast<std::size_t>(r);
  }
  counters_.add(Counter::udp_datagrams_to_client, static_cast<std::int64_t>(sent));
  counters_.add(Counter::udp_bytes_to_client, static_cast<std::int64_t>(bytes));
  return {sent, bytes};
}

}  // namespace ramjet::proxy
