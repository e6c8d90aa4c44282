#include "proxy/udp_session.h"

#include <netinet/in.h>
#include <netinet/udp.h>
#include <poll.h>
#include <spdlog/spdlog.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "proxy/egress_chain.h"
#include "proxy/relay.h"
#include "proxy/udp_onramp.h"

namespace ramjet::proxy {

using telemetry::Counter;

UdpSession::UdpSession(UdpOnramp& onramp, telemetry::CounterRow& counters, UdpFlowKey key,
                       ConnectionInfo info)
    : Session(onramp.context(), counters),
      onramp_(onramp),
      ep_(onramp.endpoint()),
      key_(std::move(key)),
      reply_to_(info.proxied_by.value_or(info.client)),
      info_(std::move(info)) {
  started_ = last_activity_ = runtime::Clock::now();
  bind_view({&info_, &stats_, &no_relay_, &started_});
  counters_.add(Counter::udp_sessions_opened);
  counters_.add(Counter::udp_sessions_active);
}

UdpSession::~UdpSession() {
  if (marked_) onramp_.forget_pending(this);
  counters_.add(Counter::udp_sessions_active, -1);
}

void UdpSession::force_close(CloseReason why) {
  if (!close_reason_) close_reason_ = why;
  if (upstream_fd_ >= 0) wc_.worker.cancel_fd(upstream_fd_);
  linger_slot_.cancel();
  reply_slot_.cancel();
}

void UdpSession::from_client(std::span<const std::uint8_t> payload, const SocketAddress& peer) {
  reply_to_ = peer;
  switch (phase_) {
    case Phase::kRelaying:
      send_upstream(payload);  // its time of activity is the flush's (drained)
      return;
    case Phase::kSettingUp:
      last_activity_ = runtime::Clock::now();
      if (queued_.size() >= ep_.udp.setup_queue) {
        counters_.add(Counter::udp_dropped_setup_queue);
        return;
      }
      queued_.emplace_back(reinterpret_cast<const char*>(payload.data()), payload.size());
      return;
    case Phase::kBlocked:
      last_activity_ = runtime::Clock::now();
      counters_.add(Counter::udp_dropped_blocked);
      return;
  }
}

namespace {
// One GSO send carries at most this many datagrams (the kernel's UDP_MAX_SEGMENTS is 64
// before 6.9) and bytes (one UDP datagram's worth, headers aside).
constexpr std::size_t kMaxSegments = 64;
constexpr std::size_t kMaxTrainBytes = 65000;
}  // namespace

void UdpSession::send_upstream(std::span<const std::uint8_t> payload) {
  // The PROXY header and the payload leave as one datagram (docs/udp.md).
  const std::size_t size = proxy_header_.size() + payload.size();
  if (size > 0xffff) {  // more than any UDP datagram carries
    counters_.add(Counter::udp_dropped_send_error);
    return;
  }
  // A datagram larger than a train's limit waits alone and leaves with one send.
  if (out_sizes_.size() == kMaxSegments ||
      (!out_sizes_.empty() && out_.size() + size > kMaxTrainBytes))
    flush_upstream();
  if (!marked_) {
    marked_ = true;
    onramp_.mark_pending(this);
  }
  out_.append(proxy_header_);
  out_.append(reinterpret_cast<const char*>(payload.data()), payload.size());
  out_sizes_.push_back(static_cast<std::uint16_t>(size));
}

void UdpSession::drained(runtime::Clock::time_point now) {
  marked_ = false;
  last_activity_ = now;
  flush_upstream();
}

UdpSession::TrainResult UdpSession::send_train(const char* data, std::size_t len,
                                               std::uint16_t segment) {
  iovec iov{const_cast<char*>(data), len};
  alignas(cmsghdr) char control[CMSG_SPACE(sizeof(std::uint16_t))] = {};
  msghdr msg{};
  msg.msg_iov = &iov;
  msg.msg_iovlen = 1;
  msg.msg_control = control;
  msg.msg_controllen = sizeof control;
  cmsghdr* cm = CMSG_FIRSTHDR(&msg);
  cm->cmsg_level = SOL_UDP;
  cm->cmsg_type = UDP_SEGMENT;
  cm->cmsg_len = CMSG_LEN(sizeof segment);
  std::memcpy(CMSG_DATA(cm), &segment, sizeof segment);
  for (int attempt = 0; attempt < 2; ++attempt) {
    // A connected UDP socket: the kernel sends at once or refuses; no ring round trip.
    if (::sendmsg(upstream_fd_, &msg, MSG_DONTWAIT | MSG_NOSIGNAL) >= 0) return TrainResult::kSent;
    switch (errno) {
      case ECONNREFUSED:
        continue;  // an ICMP error about an earlier datagram, reported once: send again
      case EINVAL:      // a segment over the path's MTU (a single send would fragment)
      case EIO:         // no checksum offload on the route's device
      case EOPNOTSUPP:  // a kernel without UDP GSO
      case EMSGSIZE:
        gso_ = false;
        return TrainResult::kUnsupported;
      default:
        return TrainResult::kRefused;  // a full buffer: dropped, as a router would
    }
  }
  return TrainResult::kRefused;
}

bool UdpSession::send_one(const char* data, std::size_t len) {
  return send_udp_datagram(upstream_fd_, data, len);
}

void UdpSession::flush_upstream() {
  const std::size_t n = out_sizes_.size();
  std::size_t sent = 0;
  std::size_t sent_bytes = 0;
  std::size_t trains = 0;
  std::size_t in_trains = 0;
  const char* at = out_.data();
  for (std::size_t i = 0; i < n;) {
    // A train for one GSO send: datagrams of the first one's size, and one shorter last.
    std::size_t j = i + 1;
    std::size_t len = out_sizes_[i];
    if (gso_) {
      while (j < n && out_sizes_[j] == out_sizes_[i]) len += out_sizes_[j++];
      if (j < n && out_sizes_[j] < out_sizes_[i]) len += out_sizes_[j++];
    }
    TrainResult r = TrainResult::kUnsupported;
    if (j - i > 1) r = send_train(at, len, out_sizes_[i]);
    if (r == TrainResult::kSent) {
      sent += j - i;
      sent_bytes += len;
      ++trains;
      in_trains += j - i;
    } else if (r == TrainResult::kUnsupported) {
      const char* p = at;
      for (std::size_t k = i; k < j; p += out_sizes_[k++]) {
        if (!send_one(p, out_sizes_[k])) continue;
        ++sent;
        sent_bytes += out_sizes_[k];
      }
    }
    at += len;
    i = j;
  }
  if (sent < n) counters_.add(Counter::udp_dropped_send_error, static_cast<std::int64_t>(n - sent));
  if (trains > 0) {
    counters_.add(Counter::udp_gso_sends, static_cast<std::int64_t>(trains));
    counters_.add(Counter::udp_gso_datagrams, static_cast<std::int64_t>(in_trains));
  }
  if (sent > 0) {
    const std::size_t payload = sent_bytes - sent * proxy_header_.size();
    counters_.add(Counter::udp_datagrams_from_client, static_cast<std::int64_t>(sent));
    counters_.add(Counter::udp_bytes_from_client, static_cast<std::int64_t>(payload));
    stats_.bytes_from_client += payload;
  }
  out_.clear();
  out_sizes_.clear();
}

Task<void> UdpSession::run() {
  ctx_ = wc_.hooks.make_connection_context();
  set_state(SessionState::kHooks);
  bool open = false;
  if (co_await ingress_blocks(info_, ctx_.get())) {
    close_reason_ = CloseReason::kBlockedIngress;
  } else if (!close_reason_ && (!ep_.transparent || open_reply_socket())) {
    set_state(SessionState::kConnecting);
    open = co_await open_upstream();
  }
  if (open && !close_reason_) {
    phase_ = Phase::kRelaying;
    set_state(SessionState::kRelaying);
    for (const std::string& d : queued_)
      send_upstream({reinterpret_cast<const std::uint8_t*>(d.data()), d.size()});
    // They leave with what comes next in this batch, once the worker's ring is drained.
    queued_.clear();
    queued_.shrink_to_fit();
    runtime::JoinSet watcher;
    if (reply_fd_ >= 0) watcher.start(watch_reply_socket());
    co_await relay();
    reply_slot_.cancel();
    co_await watcher.wait();
  } else {
    phase_ = Phase::kBlocked;
    counters_.add(Counter::udp_dropped_blocked, static_cast<std::int64_t>(queued_.size()));
    queued_.clear();
    queued_.shrink_to_fit();
    // Refused by a hook, the guard or DNS: keep dropping the client's datagrams until it
    // is idle. Shut down or killed: end now.
    const bool ended = close_reason_ && (*close_reason_ == CloseReason::kShutdown ||
                                         *close_reason_ == CloseReason::kKilled);
    if (!ended) co_await linger();
  }
  finish();
}

bool UdpSession::open_reply_socket() {
  // Replies must come from where the client sent (a resolver drops an answer from any
  // other address or port), which is not an address of this host: IP_TRANSPARENT lets
  // the socket bind it, SO_REUSEADDR lets every client's session bind the same one, and
  // connect() makes the kernel pick this session's socket for ICMP errors about it.
  const SocketAddress& local = info_.local;
  const SocketAddress& client = reply_to_;
  int fd = ::socket(local.family(), SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  auto fail = [&](const char* what) {
    int err = errno;
    spdlog::info("flow {}: UDP reply socket {} -> {}: {}: {}", info_.id, local.to_string(),
                 client.to_string(), what, std::strerror(err));
    if (fd >= 0) ::close(fd);
    counters_.add(Counter::udp_reply_socket_failed);
    close_reason_ = CloseReason::kDownstreamError;
    return false;
  };
  if (fd < 0) return fail("socket");
  int one = 1;
  const int rc = local.ip().is_v4()
                     ? ::setsockopt(fd, SOL_IP, IP_TRANSPARENT, &one, sizeof one)
                     : ::setsockopt(fd, SOL_IPV6, IPV6_TRANSPARENT, &one, sizeof one);
  if (rc != 0) return fail("IP_TRANSPARENT");
  ::setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
  // With ip endpoints: what the engine sends never enters a TUN on-ramp.
  if (std::uint32_t mark = wc_.upstream_mark; mark != 0)
    ::setsockopt(fd, SOL_SOCKET, SO_MARK, &mark, sizeof mark);
  sockaddr_storage ss;
  socklen_t len = local.to_sockaddr(ss);
  if (::bind(fd, reinterpret_cast<sockaddr*>(&ss), len) != 0) return fail("bind");
  len = client.to_sockaddr(ss);
  if (::connect(fd, reinterpret_cast<sockaddr*>(&ss), len) != 0) return fail("connect");
  reply_fd_ = fd;
  return true;
}

Task<void> UdpSession::watch_reply_socket() {
  std::uint8_t* buf = onramp_.scratch(0);
  while (!close_reason_) {
    const int ev = co_await wc_.worker.poll(reply_fd_, POLLIN, &reply_slot_);
    if (ev < 0) break;  // cancelled: the relay ended
    if (ev & POLLERR) {
      // Without IP_RECVERR a connected socket keeps the last hard ICMP error in SO_ERROR
      // (reading it clears it): port or protocol unreachable (ECONNREFUSED), and also
      // "fragmentation needed" / "packet too big" (EMSGSIZE), which only says a reply
      // was too large for the path and must not end the session.
      int err = 0;
      socklen_t len = sizeof err;
      ::getsockopt(reply_fd_, SOL_SOCKET, SO_ERROR, &err, &len);
      if (err != 0 && err != ECONNREFUSED) {
        counters_.add(Counter::udp_icmp_errors);
        spdlog::debug("flow {}: ICMP error about the replies to {}: {}; session kept", info_.id,
                      reply_to_.to_string(), std::strerror(err));
      } else if (err != 0) {
        counters_.add(Counter::udp_icmp_errors);
        spdlog::debug("flow {}: ICMP error about the replies to {}: {}", info_.id,
                      reply_to_.to_string(), std::strerror(err));
        // Nobody listens there any more (a resolver closes its port after the answer).
        force_close(CloseReason::kDownstreamError);
        break;
      }
    }
    // The datapath hands the client's datagrams to the endpoint's socket, so this is a
    // datagram the stack delivered by its own lookup: still the client's.
    for (;;) {
      const ssize_t n = ::recv(reply_fd_, buf, UdpOnramp::kMaxDatagram, MSG_DONTWAIT);
      if (n < 0) break;
      from_client({buf, static_cast<std::size_t>(n)}, reply_to_);
    }
  }
}

// Not in the coroutine: GCC 12 runs the cleanups of both arms of a conditional
// expression with temporaries inside a coroutine (a free() of a string never built).
HostPort UdpSession::upstream_target() const {
  // Transparent endpoints relay to where the client was going (the datapath kept it).
  if (ep_.transparent) return HostPort{info_.local.ip().unmapped().to_string(), info_.local.port()};
  return ep_.upstream->target;
}

Task<bool> UdpSession::open_upstream() {
  EgressChain chain(wc_, counters_, info_, ctx_.get(), ep_, audited_decisions());
  auto opened = co_await chain.connect_udp(upstream_target());
  if (auto* e = std::get_if<EgressError>(&opened)) {
    if (!close_reason_) close_reason_ = e->close_reason();
    co_return false;
  }
  auto& up = std::get<UdpUpstream>(opened);
  if (close_reason_) {  // shut down or killed while the hooks ran
    ::close(up.fd);
    co_return false;
  }
  upstream_fd_ = up.fd;
  proxy_header_ = std::move(up.proxy_header);
  stats_.upstream = up.address.to_string();
  co_return true;
}

Task<void> UdpSession::relay() {
  const auto idle = ep_.udp.idle_timeout;
  runtime::BufferRing& ring = *wc_.buffers;
  for (;;) {
    if (close_reason_) break;
    const auto left = last_activity_ + idle - runtime::Clock::now();
    if (left <= std::chrono::nanoseconds::zero()) {
      close_reason_ = CloseReason::kIdleTimeout;
      counters_.add(Counter::udp_sessions_idle_closed);
      break;
    }
    auto op = wc_.worker.recv_select(upstream_fd_, ring.group(), ring.buffer_size());
    op.with_timeout(left);
    const int n = co_await op;
    if (n == -ETIMEDOUT) continue;  // the idle check above decides (a client may have sent)
    if (n == -ECANCELED) {
      if (!close_reason_) close_reason_ = CloseReason::kShutdown;
      break;
    }
    // Every buffer of the worker's ring holds a datagram not yet sent on: the datagram
    // waits in the socket until one is recycled.
    if (n == -ENOBUFS) continue;
    if (n < 0) {
      // An ICMP error of an earlier datagram (port unreachable...): the upstream may
      // come back, as for any UDP peer; the idle timeout ends the session otherwise.
      if (n == -ECONNREFUSED || n == -EHOSTUNREACH || n == -ENETUNREACH) {
        counters_.add(Counter::udp_dropped_send_error);
        continue;
      }
      close_reason_ = CloseReason::kUpstreamError;
      break;
    }
    const unsigned id = op.op.flags >> IORING_CQE_BUFFER_SHIFT;
    last_activity_ = runtime::Clock::now();
    // The first datagram from the ring, then whatever else is queued, in one sendmmsg.
    std::span<const std::uint8_t> batch[UdpOnramp::kBatch];
    std::size_t count = 0;
    batch[count++] = {ring.buffer(id), static_cast<std::size_t>(n)};
    while (count < UdpOnramp::kBatch) {
      ssize_t m =
          ::recv(upstream_fd_, onramp_.scratch(count), UdpOnramp::kMaxDatagram, MSG_DONTWAIT);
      if (m < 0) break;
      batch[count] = {onramp_.scratch(count), static_cast<std::size_t>(m)};
      ++count;
    }
    auto [sent, bytes] = onramp_.send_to_client(reply_to_, {batch, count}, reply_fd_);
    ring.recycle(id);
    stats_.bytes_to_client += bytes;
    (void)sent;
  }
}

Task<void> UdpSession::linger() {
  const auto idle = ep_.udp.idle_timeout;
  for (;;) {
    const auto left = last_activity_ + idle - runtime::Clock::now();
    if (left <= std::chrono::nanoseconds::zero()) break;
    if (co_await wc_.worker.sleep(left, &linger_slot_) == -ECANCELED) break;
  }
}

void UdpSession::finish() {
  if (upstream_fd_ >= 0) ::close(upstream_fd_);
  upstream_fd_ = -1;
  if (reply_fd_ >= 0) ::close(reply_fd_);
  reply_fd_ = -1;
  onramp_.erase(this);
  // -1: the client's socket is the endpoint's, shared by every session.
  close_epilogue(-1, info_, stats_, close_reason_, started_, ctx_.get());
}

}  // namespace ramjet::proxy
