#include "proxy/proxy_protocol_prologue.h"

#include <poll.h>
#include <spdlog/spdlog.h>
#include <sys/socket.h>

#include <algorithm>
#include <array>
#include <cstdint>
#include <vector>

#include "proxy_protocol/parser.h"

namespace ramjet::proxy {
namespace {

namespace pp = ramjet::proxy_protocol;
using telemetry::Counter;

// The counters proxy_protocol_<reason> follow proxy_protocol_headers in Reason order.
constexpr Counter counter_of(pp::Reason r) {
  return telemetry::counter_after(Counter::proxy_protocol_headers, static_cast<std::size_t>(r));
}
static_assert(telemetry::counters_follow(Counter::proxy_protocol_headers, "proxy_protocol_",
                                         pp::kReasonNames),
              "telemetry/stats.h: proxy_protocol_<reason> counters out of step with "
              "proxy_protocol/reason.h");

// The largest header the parser accepts (pp::Limits): a need-more never has a full buffer.
constexpr std::size_t kPeekSize = pp::kV2HeaderLength + pp::Limits{}.max_v2_length;
// A header cut short by the network: look again after a pause that grows to this.
constexpr std::chrono::milliseconds kMaxRetryPause{64};

bool reject(telemetry::CounterRow& counters, const ConnectionInfo& info, pp::Reason r,
            std::size_t offset = 0) {
  counters.add(counter_of(r));
  spdlog::info("flow {}: PROXY protocol header from {} refused: {} (at byte {})", info.id,
               info.client.to_string(), pp::to_string(r), offset);
  return false;
}

// The peer closed (or reset) its side: the bytes peeked are all there will be.
bool peer_gone(int fd) {
  pollfd p{fd, POLLRDHUP, 0};
  return ::poll(&p, 1, 0) == 1 && (p.revents & (POLLRDHUP | POLLHUP | POLLERR)) != 0;
}

// Drops the header's `n` bytes from the socket; they are already queued.
Task<bool> consume(runtime::Worker& worker, int fd, std::size_t n) {
  std::array<std::uint8_t, 512> sink;
  while (n > 0) {
    int got = co_await worker.recv(fd, sink.data(), std::min(n, sink.size()));
    if (got <= 0) co_return false;
    n -= static_cast<std::size_t>(got);
  }
  co_return true;
}

}  // namespace

telemetry::Counter proxy_protocol_counter(pp::Reason r) {
  return counter_of(r);
}

Task<bool> read_proxy_protocol(WorkerContext& wc, const config::Endpoint& ep,
                               telemetry::CounterRow& counters, int fd, ConnectionInfo& info) {
  const config::ProxyProtocolSettings& cfg = ep.proxy_protocol;
  if (!cfg.enabled()) co_return true;
  const bool trusted = cfg.trusts(info.client.ip());
  const bool required = cfg.mode == config::ProxyProtocolMode::kRequired;
  // Required mode: nothing but headers arrives here, so a peer not trusted to send one
  // has nothing to say.
  if (required && !trusted) co_return reject(counters, info, pp::Reason::kUntrustedPeer);

  pp::Limits limits;
  limits.accept_v1 = cfg.accepts(1);
  limits.accept_v2 = cfg.accepts(2);
  std::vector<std::uint8_t> buf(kPeekSize);
  const auto deadline = runtime::Clock::now() + cfg.timeout;
  std::chrono::milliseconds pause{2};
  std::size_t seen = 0;
  for (;;) {
    const auto left = deadline - runtime::Clock::now();
    if (left <= std::chrono::nanoseconds::zero() || wc.draining) {
      // Optional mode, silent peer: a server-speaks-first protocol; hand it on as it is.
      if (!required && seen == 0 && !wc.draining) co_return true;
      co_return reject(counters, info, pp::Reason::kTimeout, seen);
    }
    auto op = wc.worker.recv(fd, buf.data(), buf.size(), MSG_PEEK);
    op.with_timeout(left);
    const int n = co_await op;
    if (n == -ETIMEDOUT) continue;  // the deadline check above decides
    if (n <= 0) co_return reject(counters, info, pp::Reason::kTruncated, seen);
    seen = static_cast<std::size_t>(n);
    const std::span<const std::uint8_t> got(buf.data(), seen);

    if (!required) {
      const pp::Detected d = pp::detect(got);
      if (d == pp::Detected::kNone) co_return true;  // no header: the next layer's bytes
      if (d != pp::Detected::kNeedMore && !trusted)
        co_return reject(counters, info, pp::Reason::kUntrustedPeer);
    }
    ProxyHeader header;
    const pp::Result r = pp::parse(got, header, limits);
    if (r.status == pp::Status::kError) co_return reject(counters, info, r.reason, r.offset);
    if (r.status == pp::Status::kNeedMore) {
      if (peer_gone(fd)) co_return reject(counters, info, pp::Reason::kTruncated, seen);
      co_await wc.worker.sleep(pause);
      pause = std::min(pause * 2, kMaxRetryPause);
      continue;
    }

    if (!co_await consume(wc.worker, fd, r.consumed))
      co_return reject(counters, info, pp::Reason::kTruncated, seen);
    counters.add(Counter::proxy_protocol_headers);
    if (auto client = header.client()) {
      info.proxied_by = info.client;
      info.client = *client;
    }
    info.proxy_header = std::make_shared<const ProxyHeader>(std::move(header));
    co_return true;
  }
}

}  // namespace ramjet::proxy
