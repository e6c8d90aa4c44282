#include "dns/resolver.h"

#include <arpa/nameser.h>
#include <poll.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <mutex>
#include <type_traits>
#include <utility>

#include "dns/soa.h"

namespace ramjet::dns {

namespace {

using runtime::Clock;
static_assert(std::is_same_v<Clock, Cache::Clock>, "the cache is fed worker time");

// A long sleep that something else always cuts short (a cancel); waking without
// news is harmless, every wait loop re-checks its condition.
constexpr std::chrono::hours kIdleWait{1};
// c-ares fills at most this many address/TTL pairs per answer.
constexpr int kMaxAddresses = 64;
// Consecutive failed polls on one c-ares socket before we stop watching it; c-ares
// then times the query out through the timer like a lost packet.
constexpr int kMaxPollErrors = 8;

bool is_localhost(std::string_view name) {
  // RFC 6761 section 6.3: never sent to DNS.
  return name == "localhost" || (name.size() > 10 && name.ends_with(".localhost"));
}

const char* failure_name(int status) {
  switch (status) {
    case ARES_ESERVFAIL:
      return "SERVFAIL";
    case ARES_EREFUSED:
      return "REFUSED";
    case ARES_EFORMERR:
      return "FORMERR";
    case ARES_ENOTIMP:
      return "NOTIMP";
    case ARES_ENOTFOUND:
      return "NXDOMAIN without a response";
    case ARES_EBADRESP:
      return "malformed response";
    case ARES_ECONNREFUSED:
      return "no server reachable";
    case ARES_EDESTRUCTION:
      return "resolver closed";
    default:
      return ares_strerror(status);
  }
}

}  // namespace

// ------------------------------------------------------------------ internals

// The outcome of one question, from the cache or from upstream.
struct Resolver::Outcome {
  enum class Kind : std::uint8_t { kPending, kPositive, kNegative, kFailure };
  Kind kind = Kind::kPending;
  std::vector<IpAddress> addresses;
  NegativeKind negative = NegativeKind::kNoData;
  int status = ARES_SUCCESS;  // c-ares status of a failure
  Clock::time_point at;       // when it became known
};

// One (name, type) in flight, shared by every resolve() call that asked for it.
struct Resolver::Question {
  std::string name;
  RecordType type = RecordType::kA;
  Outcome outcome;
  std::vector<Waiter*> waiters;
};

// A suspended resolve() call: it sleeps through `slot`, which news cancels.
struct Resolver::Waiter {
  runtime::CancelSlot* slot = nullptr;
};

struct Resolver::SocketWatch {
  int fd = -1;
  ares_channel channel = nullptr;
  bool read = false;
  bool write = false;
  bool closed = false;  // c-ares closed the socket, or the resolver stopped
  short polling = 0;    // events of the poll in flight
  runtime::CancelSlot* slot = nullptr;
};

struct Resolver::ChannelCtx {
  Resolver* self = nullptr;
  ares_channel channel = nullptr;
};

// The ares_query callback argument: owned by c-ares until the callback, which
// c-ares calls exactly once (ARES_EDESTRUCTION at the latest).
struct Resolver::QueryCtx {
  Resolver* self;
  std::shared_ptr<Question> question;
  bool fallback;
};

Resolver::Resolver(runtime::Worker& worker, ResolverSettings settings)
    : worker_(worker),
      settings_(std::move(settings)),
      cache_(CacheSettings{settings_.cache_size, settings_.min_ttl, settings_.max_ttl,
                           settings_.negative_ttl}),
      shared_(std::make_shared<Shared>()) {}

Result<std::unique_ptr<Resolver>> Resolver::create(runtime::Worker& worker,
                                                   ResolverSettings settings) {
  static std::once_flag once;
  static int lib_rc = ARES_SUCCESS;
  std::call_once(once, [] { lib_rc = ares_library_init(ARES_LIB_INIT_ALL); });
  if (lib_rc != ARES_SUCCESS)
    return Error::internal(std::string("ares_library_init: ") + ares_strerror(lib_rc));

  std::unique_ptr<Resolver> r(new Resolver(worker, std::move(settings)));
  r->primary_ = std::make_unique<ChannelCtx>();
  if (auto rc = r->init_channel(*r->primary_, r->settings_.servers); !rc) return rc.take_error();
  if (!r->settings_.fallback_servers.empty()) {
    r->fallback_ = std::make_unique<ChannelCtx>();
    if (auto rc = r->init_channel(*r->fallback_, r->settings_.fallback_servers); !rc)
      return rc.take_error();
  }
  return r;
}

Result<void> Resolver::init_channel(ChannelCtx& ctx, const std::vector<SocketAddress>& servers) {
  ctx.self = this;
  ares_options opts{};
  opts.sock_state_cb = &Resolver::on_sock_state;
  opts.sock_state_cb_data = &ctx;
  opts.timeout = static_cast<int>(std::max<std::int64_t>(1, settings_.timeout.count()));
  opts.tries = static_cast<int>(std::max(1u, settings_.attempts));
  int rc = ares_init_options(&ctx.channel, &opts,
                             ARES_OPT_SOCK_STATE_CB | ARES_OPT_TIMEOUTMS | ARES_OPT_TRIES);
  if (rc != ARES_SUCCESS) {
    ctx.channel = nullptr;
    return Error::config(std::string("dns: ares_init_options: ") + ares_strerror(rc));
  }
  if (servers.empty()) return {};  // c-ares read /etc/resolv.conf

  std::vector<ares_addr_port_node> nodes(servers.size());
  for (std::size_t i = 0; i < servers.size(); ++i) {
    const SocketAddress& sa = servers[i];
    ares_addr_port_node& n = nodes[i];
    n.next = i + 1 < servers.size() ? &nodes[i + 1] : nullptr;
    n.family = sa.family();
    std::memcpy(sa.ip().is_v4() ? static_cast<void*>(&n.addr.addr4) : &n.addr.addr6, sa.ip().data(),
                sa.ip().size());
    n.udp_port = sa.port();
    n.tcp_port = sa.port();
  }
  rc = ares_set_servers_ports(ctx.channel, nodes.data());
  if (rc != ARES_SUCCESS)
    return Error::config(std::string("dns: ares_set_servers_ports: ") + ares_strerror(rc));
  return {};
}

Resolver::~Resolver() {
  if (!shared_->stopped) destroy_channels();
}

void Resolver::destroy_channels() {
  // Set first: the callbacks ares_destroy() runs must not send to the fallback.
  shared_->stopped = true;
  for (ChannelCtx* ch : {primary_.get(), fallback_.get()}) {
    if (ch != nullptr && ch->channel != nullptr) {
      ares_destroy(ch->channel);  // fails pending queries, reports sockets closed
      ch->channel = nullptr;
    }
  }
  for (auto& [fd, watch] : watches_) {
    watch->closed = true;
    if (watch->slot != nullptr) watch->slot->cancel();
  }
  watches_.clear();
  if (timer_slot_ != nullptr) timer_slot_->cancel();
  timer_slot_ = nullptr;
}

void Resolver::leave(const std::shared_ptr<Shared>& shared) {
  if (--shared->live != 0) return;
  for (std::coroutine_handle<> h : std::exchange(shared->closers, {})) h.resume();
}

Task<void> Resolver::close() {
  if (!shared_->stopped) destroy_channels();
  struct Drained {
    Shared* shared;
    bool await_ready() const noexcept { return shared->live == 0; }
    void await_suspend(std::coroutine_handle<> h) { shared->closers.push_back(h); }
    void await_resume() const noexcept {}
  };
  co_await Drained{shared_.get()};
}

// ------------------------------------------------------------------ c-ares glue

void Resolver::on_sock_state(void* data, ares_socket_t fd, int readable, int writable) {
  Resolver* self = static_cast<ChannelCtx*>(data)->self;
  auto it = self->watches_.find(fd);
  if (readable == 0 && writable == 0) {
    // c-ares closes fd right after this; the poll holds its own file reference and
    // would never fire, so it must be cancelled.
    if (it != self->watches_.end()) {
      it->second->closed = true;
      if (it->second->slot != nullptr) it->second->slot->cancel();
      self->watches_.erase(it);
    }
    return;
  }
  if (it == self->watches_.end()) {
    if (self->shared_->stopped) return;
    auto watch = std::make_shared<SocketWatch>();
    watch->fd = fd;
    watch->channel = static_cast<ChannelCtx*>(data)->channel;
    watch->read = readable != 0;
    watch->write = writable != 0;
    self->watches_.emplace(fd, watch);
    ++self->shared_->live;
    self->worker_.spawn(watch_loop(self, self->shared_, std::move(watch)));
    return;
  }
  SocketWatch& w = *it->second;
  w.read = readable != 0;
  w.write = writable != 0;
  short want = static_cast<short>((w.read ? POLLIN : 0) | (w.write ? POLLOUT : 0));
  if (w.slot != nullptr && w.polling != want) w.slot->cancel();  // re-poll with the new mask
}

Task<void> Resolver::watch_loop(Resolver* self, std::shared_ptr<Shared> shared,
                                std::shared_ptr<SocketWatch> w) {
  runtime::Worker& worker = self->worker_;
  int errors = 0;
  // After a wake-up `self` is only touched when !stopped: the Resolver may be gone.
  while (!shared->stopped && !w->closed) {
    short events = static_cast<short>((w->read ? POLLIN : 0) | (w->write ? POLLOUT : 0));
    if (events == 0) break;
    runtime::CancelSlot slot;
    w->slot = &slot;
    w->polling = events;
    int r = co_await worker.poll(w->fd, events, &slot);
    w->slot = nullptr;
    if (shared->stopped || w->closed) break;
    if (r == -ECANCELED) continue;  // the wanted events changed
    if (r < 0) {
      if (++errors > kMaxPollErrors) {
        w->closed = true;
        if (auto it = self->watches_.find(w->fd); it != self->watches_.end() && it->second == w)
          self->watches_.erase(it);
        break;
      }
      r = POLLERR;  // let c-ares find the socket error itself
    } else {
      errors = 0;
    }
    ares_socket_t rfd = ARES_SOCKET_BAD;
    ares_socket_t wfd = ARES_SOCKET_BAD;
    if (w->read && (r & (POLLIN | POLLERR | POLLHUP))) rfd = w->fd;
    if (w->write && (r & (POLLOUT | POLLERR | POLLHUP))) wfd = w->fd;
    ares_process_fd(w->channel, rfd, wfd);
  }
  leave(shared);
}

Task<void> Resolver::timer_loop(Resolver* self, std::shared_ptr<Shared> shared) {
  runtime::Worker& worker = self->worker_;
  while (!shared->stopped) {
    if (self->pending_queries_ == 0) {
      self->timer_running_ = false;
      break;
    }
    std::chrono::nanoseconds wait = std::chrono::seconds(1);
    for (ChannelCtx* ch : {self->primary_.get(), self->fallback_.get()}) {
      timeval tv{};
      if (ch != nullptr && ares_timeout(ch->channel, nullptr, &tv) != nullptr)
        wait = std::min<std::chrono::nanoseconds>(
            wait, std::chrono::seconds(tv.tv_sec) + std::chrono::microseconds(tv.tv_usec));
    }
    runtime::CancelSlot slot;
    self->timer_slot_ = &slot;
    co_await worker.sleep(wait, &slot);
    if (shared->stopped) break;
    self->timer_slot_ = nullptr;
    // Woken early or not, handling due timeouts is cheap and always correct.
    for (ChannelCtx* ch : {self->primary_.get(), self->fallback_.get()}) {
      if (ch != nullptr) ares_process_fd(ch->channel, ARES_SOCKET_BAD, ARES_SOCKET_BAD);
    }
  }
  leave(shared);
}

void Resolver::ensure_timer() {
  if (pending_queries_ == 0 || shared_->stopped) return;
  if (!timer_running_) {
    timer_running_ = true;
    ++shared_->live;
    worker_.spawn(timer_loop(this, shared_));
  } else if (timer_slot_ != nullptr) {
    timer_slot_->cancel();  // the new query may time out before the timer is set to fire
  }
}

void Resolver::send(const std::shared_ptr<Question>& q, bool fallback) {
  ChannelCtx& ch = fallback ? *fallback_ : *primary_;
  ++stats_.queries;
  ++pending_queries_;
  // May call on_answer before returning (bad name, no servers): q must be set up.
  ares_query(ch.channel, q->name.c_str(), ns_c_in, q->type == RecordType::kA ? ns_t_a : ns_t_aaaa,
             &Resolver::on_answer, new QueryCtx{this, q, fallback});
  ensure_timer();
}

std::shared_ptr<Resolver::Question> Resolver::question_for(const std::string& name,
                                                           RecordType type) {
  auto key = std::make_pair(name, type);
  if (auto it = in_flight_questions_.find(key); it != in_flight_questions_.end()) return it->second;
  auto q = std::make_shared<Question>();
  q->name = name;
  q->type = type;
  in_flight_questions_.emplace(std::move(key), q);
  send(q, false);
  return q;
}

void Resolver::finish(Question& q) {
  if (auto it = in_flight_questions_.find({q.name, q.type});
      it != in_flight_questions_.end() && it->second.get() == &q)
    in_flight_questions_.erase(it);
  // Wake through the ring rather than resuming here: we are inside c-ares.
  for (Waiter* w : q.waiters) {
    if (w->slot != nullptr) w->slot->cancel();
  }
}

void Resolver::on_answer(void* arg, int status, int /*timeouts*/, unsigned char* abuf, int alen) {
  std::unique_ptr<QueryCtx> ctx(static_cast<QueryCtx*>(arg));
  Resolver* self = ctx->self;
  Question& q = *ctx->question;
  if (--self->pending_queries_ == 0 && self->timer_slot_ != nullptr) self->timer_slot_->cancel();

  Outcome o;
  o.at = self->worker_.now();
  std::span<const std::uint8_t> msg;
  if (abuf != nullptr && alen > 0) msg = {abuf, static_cast<std::size_t>(alen)};
  std::uint32_t ttl = 0;
  auto set_failure = [&o](int st) {
    o.kind = Outcome::Kind::kFailure;
    o.status = st;
  };

  if (self->shared_->stopped) {
    set_failure(ARES_EDESTRUCTION);
  } else if (status == ARES_SUCCESS) {
    int n = kMaxAddresses;
    int rc;
    if (q.type == RecordType::kA) {
      ares_addrttl ttls[kMaxAddresses];
      rc = ares_parse_a_reply(abuf, alen, nullptr, ttls, &n);
      for (int i = 0; rc == ARES_SUCCESS && i < n; ++i) {
        o.addresses.push_back(IpAddress::from_bytes(IpAddress::Family::kV4, &ttls[i].ipaddr));
        ttl = i == 0 ? ttls[i].ttl : std::min<std::uint32_t>(ttl, std::max(ttls[i].ttl, 0));
      }
    } else {
      ares_addr6ttl ttls[kMaxAddresses];
      rc = ares_parse_aaaa_reply(abuf, alen, nullptr, ttls, &n);
      for (int i = 0; rc == ARES_SUCCESS && i < n; ++i) {
        o.addresses.push_back(IpAddress::from_bytes(IpAddress::Family::kV6, &ttls[i].ip6addr));
        ttl = i == 0 ? ttls[i].ttl : std::min<std::uint32_t>(ttl, std::max(ttls[i].ttl, 0));
      }
    }
    if (rc == ARES_SUCCESS && !o.addresses.empty()) {
      o.kind = Outcome::Kind::kPositive;
    } else if (rc == ARES_SUCCESS || rc == ARES_ENODATA) {
      o.kind = Outcome::Kind::kNegative;  // e.g. only a CNAME to a name without this type
    } else {
      set_failure(rc);
    }
  } else if (status == ARES_ENODATA) {
    o.kind = Outcome::Kind::kNegative;
  } else if (status == ARES_ENOTFOUND && msg.size() >= 12 && (msg[3] & 0x0F) == ns_r_nxdomain) {
    o.kind = Outcome::Kind::kNegative;
    o.negative = NegativeKind::kNxDomain;
  } else {
    set_failure(status);
  }

  if (o.kind == Outcome::Kind::kFailure && !ctx->fallback && self->fallback_ != nullptr &&
      !self->shared_->stopped) {
    // Timeouts, SERVFAIL, REFUSED...: the primaries gave no answer, ask the fallbacks.
    // NXDOMAIN and NODATA are answers and never get here.
    ++self->stats_.fallback_used;
    self->send(ctx->question, true);
    return;
  }
  if (o.kind == Outcome::Kind::kPositive) {
    self->cache_.insert_positive(q.name, q.type, o.addresses, std::chrono::seconds(ttl), o.at);
  } else if (o.kind == Outcome::Kind::kNegative) {
    std::optional<std::chrono::seconds> soa;
    if (auto t = soa_negative_ttl(msg)) soa = std::chrono::seconds(*t);
    self->cache_.insert_negative(q.name, q.type, o.negative, soa, o.at);
  }
  q.outcome = std::move(o);
  self->finish(q);
}

// ------------------------------------------------------------------ resolve

namespace {

Result<std::vector<IpAddress>> assemble(const std::string& name, const Resolver::Outcome& aaaa,
                                        const Resolver::Outcome& a) {
  using Kind = Resolver::Outcome::Kind;
  std::vector<IpAddress> out;
  if (aaaa.kind == Kind::kPositive) out = aaaa.addresses;
  if (a.kind == Kind::kPositive) out.insert(out.end(), a.addresses.begin(), a.addresses.end());
  if (!out.empty()) return out;

  auto nx = [](const Resolver::Outcome& o) {
    return o.kind == Kind::kNegative && o.negative == NegativeKind::kNxDomain;
  };
  if (nx(aaaa) || nx(a)) return Error::upstream("dns_error: NXDOMAIN for " + name);
  for (const Resolver::Outcome* o : {&aaaa, &a}) {
    if (o->kind == Kind::kFailure && o->status == ARES_ETIMEOUT)
      return Error::upstream("dns_timeout: no answer for " + name, ETIMEDOUT, true);
  }
  for (const Resolver::Outcome* o : {&aaaa, &a}) {
    if (o->kind == Kind::kFailure)
      return Error::upstream(std::string("dns_error: ") + failure_name(o->status) + " for " + name,
                             0, true);
  }
  return Error::upstream("dns_error: NODATA (no A or AAAA records) for " + name);
}

}  // namespace

Task<Result<std::vector<IpAddress>>> Resolver::resolve(std::string host) {
  using Kind = Outcome::Kind;
  std::string_view h = host;
  if (h.size() >= 2 && h.front() == '[' && h.back() == ']') h = h.substr(1, h.size() - 2);
  if (auto ip = IpAddress::parse(h)) co_return std::vector<IpAddress>{*ip};
  if (shared_->stopped) {
    ++stats_.failures;
    co_return Error::upstream("dns_error: resolver closed", 0, true);
  }
  if (!HostPort::valid_host(h)) {
    ++stats_.failures;
    co_return Error::upstream("dns_error: invalid name \"" + std::string(h) + "\"");
  }
  std::string name = Cache::normalize(h);
  if (is_localhost(name))
    co_return std::vector<IpAddress>{*IpAddress::parse("::1"), IpAddress::v4(INADDR_LOOPBACK)};

  Clock::time_point now = worker_.now();
  Outcome found[2];  // [0] AAAA, [1] A: AAAA first, as RFC 8305 section 3 sends it
  const RecordType types[2] = {RecordType::kAaaa, RecordType::kA};
  for (int i = 0; i < 2; ++i) {
    if (auto c = cache_.lookup(name, types[i], now)) {
      found[i].kind = c->negative ? Kind::kNegative : Kind::kPositive;
      found[i].negative = c->negative.value_or(NegativeKind::kNoData);
      found[i].addresses = std::move(c->addresses);
      found[i].at = now;
    }
  }
  if (found[0].kind != Kind::kPending && found[1].kind != Kind::kPending) {
    ++stats_.cache_hits;
    auto result = assemble(name, found[0], found[1]);
    if (!result) ++stats_.failures;
    co_return result;
  }
  ++stats_.cache_misses;

  // Both questions go out even if one answer will not be waited for: late answers
  // fill the cache for the next caller.
  std::shared_ptr<Question> questions[2];
  Waiter waiter;
  for (int i = 0; i < 2; ++i) {
    if (found[i].kind != Kind::kPending) continue;
    questions[i] = question_for(name, types[i]);
    questions[i]->waiters.push_back(&waiter);
  }
  std::shared_ptr<Shared> shared = shared_;
  ++shared->live;

  Outcome& aaaa = found[0];
  Outcome& a = found[1];
  while (true) {
    for (int i = 0; i < 2; ++i) {
      if (found[i].kind == Kind::kPending && questions[i]->outcome.kind != Kind::kPending)
        found[i] = questions[i]->outcome;
    }
    now = worker_.now();
    if (aaaa.kind == Kind::kPositive) break;
    if (aaaa.kind != Kind::kPending && a.kind != Kind::kPending) break;
    Clock::duration wait = kIdleWait;
    if (a.kind == Kind::kPositive) {
      Clock::time_point give_up = a.at + settings_.resolution_delay;
      if (now >= give_up) break;
      wait = give_up - now;
    }
    runtime::CancelSlot slot;
    waiter.slot = &slot;
    co_await worker_.sleep(wait, &slot);
    waiter.slot = nullptr;
  }
  for (auto& q : questions) {
    if (q) std::erase(q->waiters, &waiter);
  }
  auto result = assemble(name, aaaa, a);
  if (!result) ++stats_.failures;
  leave(shared);  // may resume close(), after which `this` must not be touched
  co_return result;
}

}  // namespace ramjet::dns
