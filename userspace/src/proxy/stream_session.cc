#include "proxy/stream_session.h"

#include "http/auth/auth_table.h"
#include "proxy/h2_upstream.h"
#include "proxy/http_forwarding.h"
#include "proxy/relay.h"

namespace ramjet::proxy {

StreamSession::StreamSession(WorkerContext& wc, const config::Endpoint& ep,
                             telemetry::CounterRow& counters, ConnectionInfo info,
                             ClientStreams& conn, HttpVersion version,
                             telemetry::Counter stream_counter)
    : Session(wc, counters),
      ep_(ep),
      info_(std::move(info)),
      conn_(conn),
      version_(version),
      stream_counter_(stream_counter) {
  started_ = runtime::Clock::now();
  bind_view({&info_, &stats_, &no_relay_, &started_});
  if (wc_.authenticators != nullptr) auth_ = wc_.authenticators->find(ep_.name);
  if (version != HttpVersion::kHttp3) alt_svc_ = alt_svc_for(wc_, ep_);
}

StreamSession::~StreamSession() = default;

void StreamSession::stream_opened(std::int64_t stream, http::h2::RequestHead head) {
  auto x = std::make_unique<Exchange>();
  x->id = stream;
  x->head = std::move(head);
  x->ended = x->head.end_stream;
  exchanges_[stream] = std::move(x);
  started_streams_.push_back(stream);
}

bool StreamSession::stream_data(std::int64_t stream, std::string_view data) {
  auto it = exchanges_.find(stream);
  if (it == exchanges_.end()) return false;
  it->second->body.append(data);
  stats_.bytes_from_client += data.size();
  to_wake_.push_back(stream);
  return true;
}

void StreamSession::stream_trailers(std::int64_t stream, std::vector<http::h2::Field> fields) {
  auto it = exchanges_.find(stream);
  if (it != exchanges_.end()) it->second->trailers = std::move(fields);
}

void StreamSession::stream_ended(std::int64_t stream) {
  auto it = exchanges_.find(stream);
  if (it == exchanges_.end()) return;
  it->second->ended = true;
  to_wake_.push_back(stream);
}

void StreamSession::stream_closed(std::int64_t stream, std::uint32_t reset) {
  auto it = exchanges_.find(stream);
  if (it == exchanges_.end()) return;
  Exchange& x = *it->second;
  x.closed = true;
  x.reset = reset;
  // A reset stream abandons its upstream (deliver_wakeups, outside the core).
  to_wake_.push_back(stream);
}

void StreamSession::deliver_wakeups() {
  // New streams first: each starts its coroutine, which runs to its first wait.
  while (!started_streams_.empty()) {
    std::int64_t id = started_streams_.front();
    started_streams_.erase(started_streams_.begin());
    auto it = exchanges_.find(id);
    if (it == exchanges_.end()) continue;
    counters_.add(stream_counter_);
    streams_.start(serve(*it->second));
  }
  std::vector<std::int64_t> ids;
  ids.swap(to_wake_);
  for (std::int64_t id : ids) {
    auto it = exchanges_.find(id);
    if (it == exchanges_.end()) continue;
    Exchange& x = *it->second;
    if (x.closed && x.reset != 0) abandon_upstream(x);  // pending receives there end now
    it = exchanges_.find(id);
    if (it == exchanges_.end()) continue;
    it->second->input.notify();
    // notify() may have run the stream to its end; look it up again.
    it = exchanges_.find(id);
    if (it != exchanges_.end() && it->second->closed) it->second->window.notify();
  }
}

void StreamSession::cancel_all_streams() {
  closing_ = true;
  for (auto& [id, x] : exchanges_) {
    x->closed = true;
    if (x->reset == 0) x->reset = 0x8;  // any non-zero code: deliver_wakeups abandons it
    to_wake_.push_back(id);
  }
  deliver_wakeups();
}

void StreamSession::notify_windows() {
  std::vector<std::int64_t> waiting;
  for (auto& [id, x] : exchanges_)
    if (x->window.waiting()) waiting.push_back(id);
  for (std::int64_t id : waiting) {
    auto it = exchanges_.find(id);
    if (it != exchanges_.end()) it->second->window.notify();
  }
}

}  // namespace ramjet::proxy
