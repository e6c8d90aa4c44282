// The real resolver on a real Worker, against a UDP DNS responder on 127.0.0.1 that
// this file implements (minimal RFC 1035: one question, A/AAAA answers, SOA in the
// authority section of negative answers).
#include "dns/resolver.h"

#include <gtest/gtest.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <condition_variable>
#include <map>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "dns/soa.h"

namespace ramjet::dns {
namespace {

using std::chrono::milliseconds;
using Steady = std::chrono::steady_clock;

IpAddress ip(const char* s) {
  return *IpAddress::parse(s);
}

// ------------------------------------------------------------------ responder

struct Zone {
  std::vector<IpAddress> a{};
  std::vector<IpAddress> aaaa{};
  std::uint32_t ttl = 60;
  bool nxdomain = false;
  std::uint32_t soa_ttl = 3600;      // of the SOA record itself
  std::uint32_t soa_minimum = 3600;  // RFC 2308 negative TTL field
  milliseconds a_delay{0};
  milliseconds aaaa_delay{0};
};

void put16(std::vector<std::uint8_t>& b, unsigned v) {
  b.push_back(static_cast<std::uint8_t>(v >> 8));
  b.push_back(static_cast<std::uint8_t>(v));
}
void put32(std::vector<std::uint8_t>& b, std::uint32_t v) {
  put16(b, v >> 16);
  put16(b, v & 0xffff);
}

// Builds the response to `query`, or nothing if it is not a one-question query.
// `rcode_override` >= 0 answers with that rcode and no records.
std::optional<std::vector<std::uint8_t>> build_response(const std::vector<std::uint8_t>& q,
                                                        const std::map<std::string, Zone>& zones,
                                                        int rcode_override, std::string* qname_out,
                                                        unsigned* qtype_out) {
  if (q.size() < 12 || (q[4] << 8 | q[5]) != 1) return std::nullopt;
  std::size_t p = 12;
  std::string name;
  while (p < q.size() && q[p] != 0) {
    unsigned len = q[p];
    if (len > 63 || p + 1 + len > q.size()) return std::nullopt;
    if (!name.empty()) name += '.';
    for (unsigned i = 0; i < len; ++i) name += static_cast<char>(std::tolower(q[p + 1 + i]));
    p += 1 + len;
  }
  if (p + 5 > q.size()) return std::nullopt;
  p += 1;
  unsigned qtype = q[p] << 8 | q[p + 1];
  const std::size_t question_end = p + 4;
  *qname_out = name;
  *qtype_out = qtype;

  unsigned rcode = 0;
  std::vector<const IpAddress*> answers;
  bool negative = false;
  auto it = zones.find(name);
  const Zone* zone = it == zones.end() ? nullptr : &it->second;
  if (rcode_override >= 0) {
    rcode = static_cast<unsigned>(rcode_override);
  } else if (zone == nullptr || zone->nxdomain) {
    rcode = 3;  // NXDOMAIN
    negative = true;
  } else {
    for (const IpAddress& a : qtype == 1 ? zone->a : zone->aaaa) answers.push_back(&a);
    negative = answers.empty();
  }

  std::vector<std::uint8_t> r;
  r.push_back(q[0]);
  r.push_back(q[1]);
  // QR, the query's opcode and RD, RA, rcode.
  put16(r, 0x8000 | ((q[2] << 8 | q[3]) & 0x7900) | 0x0080 | rcode);
  put16(r, 1);
  put16(r, static_cast<unsigned>(answers.size()));
  put16(r, negative ? 1 : 0);
  put16(r, 0);
  r.insert(r.end(), q.begin() + 12, q.begin() + static_cast<long>(question_end));
  for (const IpAddress* a : answers) {
    put16(r, 0xC00C);  // the name in the question
    put16(r, qtype);
    put16(r, 1);
    put32(r, zone->ttl);
    put16(r, static_cast<unsigned>(a->size()));
    r.insert(r.end(), a->data(), a->data() + a->size());
  }
  if (negative) {
    put16(r, 0xC00C);
    put16(r, 6);  // SOA
    put16(r, 1);
    put32(r, zone ? zone->soa_ttl : 3600);
    put16(r, 22);
    r.push_back(0);   // MNAME: root
    r.push_back(0);   // RNAME: root
    put32(r, 1);      // SERIAL
    put32(r, 3600);   // REFRESH
    put32(r, 600);    // RETRY
    put32(r, 86400);  // EXPIRE
    put32(r, zone ? zone->soa_minimum : 3600);
  }
  return r;
}

class FakeDnsServer {
 public:
  enum class Mode { kAnswer, kSilent, kServfail };

  FakeDnsServer() {
    fd_ = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    sockaddr_in sin{};
    sin.sin_family = AF_INET;
    sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    EXPECT_EQ(bind(fd_, reinterpret_cast<sockaddr*>(&sin), sizeof sin), 0);
    socklen_t len = sizeof sin;
    getsockname(fd_, reinterpret_cast<sockaddr*>(&sin), &len);
    address_ = SocketAddress(IpAddress::v4(INADDR_LOOPBACK), ntohs(sin.sin_port));
    thread_ = std::thread([this] { serve(); });
  }
  ~FakeDnsServer() {
    stop_ = true;
    thread_.join();
    ::close(fd_);
  }

  SocketAddress address() const { return address_; }
  void set_mode(Mode m) {
    std::lock_guard lock(mu_);
    mode_ = m;
  }
  void add(const std::string& name, Zone z) {
    std::lock_guard lock(mu_);
    zones_[name] = std::move(z);
  }
  // Questions received for (name, qtype), 1 = A, 28 = AAAA.
  int count(const std::string& name, unsigned qtype) {
    std::lock_guard lock(mu_);
    return counts_[{name, qtype}];
  }
  int total() {
    std::lock_guard lock(mu_);
    int n = 0;
    for (auto& [k, v] : counts_) n += v;
    return n;
  }

 private:
  struct Delayed {
    Steady::time_point at;
    std::vector<std::uint8_t> msg;
    sockaddr_storage to;
    socklen_t to_len;
  };

  void serve() {
    std::vector<Delayed> delayed;
    while (!stop_) {
      pollfd pfd{fd_, POLLIN, 0};
      ::poll(&pfd, 1, 5);
      auto now = Steady::now();
      for (auto it = delayed.begin(); it != delayed.end();) {
        if (it->at <= now) {
          sendto(fd_, it->msg.data(), it->msg.size(), 0, reinterpret_cast<sockaddr*>(&it->to),
                 it->to_len);
          it = delayed.erase(it);
        } else {
          ++it;
        }
      }
      if (!(pfd.revents & POLLIN)) continue;
      std::vector<std::uint8_t> q(1500);
      sockaddr_storage from{};
      socklen_t from_len = sizeof from;
      ssize_t n =
          recvfrom(fd_, q.data(), q.size(), 0, reinterpret_cast<sockaddr*>(&from), &from_len);
      if (n <= 0) continue;
      q.resize(static_cast<std::size_t>(n));
      std::lock_guard lock(mu_);
      std::string name;
      unsigned qtype = 0;
      int rcode = mode_ == Mode::kServfail ? 2 : -1;
      auto resp = build_response(q, zones_, rcode, &name, &qtype);
      if (!resp) continue;
      ++counts_[{name, qtype}];
      if (mode_ == Mode::kSilent) continue;
      milliseconds delay{0};
      if (auto z = zones_.find(name); z != zones_.end())
        delay = qtype == 1 ? z->second.a_delay : z->second.aaaa_delay;
      delayed.push_back({now + delay, std::move(*resp), from, from_len});
    }
  }

  int fd_ = -1;
  SocketAddress address_;
  std::atomic<bool> stop_{false};
  std::thread thread_;
  std::mutex mu_;
  Mode mode_ = Mode::kAnswer;
  std::map<std::string, Zone> zones_;
  std::map<std::pair<std::string, unsigned>, int> counts_;
};

// ------------------------------------------------------------------ harness

struct Fixture {
  // A generous resolution delay keeps "AAAA shortly after A" deterministic on a busy
  // machine; the RFC 8305 tests set their own.
  Fixture() { settings.resolution_delay = milliseconds(300); }

  FakeDnsServer primary;
  FakeDnsServer fallback;
  ResolverSettings settings;
  std::unique_ptr<Resolver> resolver;
  runtime::Worker* worker = nullptr;
};

using Scenario = Task<void> (*)(Fixture&);

Task<void> run_scenario(Scenario scenario, Fixture& f) {
  co_await scenario(f);
  co_await f.resolver->close();  // must end every coroutine, or ASan reports leaks
  f.worker->stop();
}

// Runs scenario on a fresh Worker with a Resolver built from f.settings; a watchdog
// stops a hung test.
void run(Fixture& f, Scenario scenario) {
  runtime::Worker worker(0);
  f.worker = &worker;
  auto r = Resolver::create(worker, f.settings);
  ASSERT_TRUE(r.ok()) << r.error().message;
  f.resolver = std::move(*r);
  std::mutex mu;
  std::condition_variable cv;
  bool finished = false;
  std::thread watchdog([&] {
    std::unique_lock lock(mu);
    if (!cv.wait_for(lock, std::chrono::seconds(20), [&] { return finished; })) {
      ADD_FAILURE() << "scenario hung";
      worker.stop();
    }
  });
  worker.spawn(run_scenario(scenario, f));
  worker.run();
  {
    std::lock_guard lock(mu);
    finished = true;
  }
  cv.notify_all();
  watchdog.join();
  f.resolver.reset();
}

Task<void> sleep_for(runtime::Worker& w, milliseconds d) {
  co_await w.sleep(d);
}

std::vector<IpAddress> both = {ip("2001:db8::1"), ip("192.0.2.1")};
// Well inside the fixture's resolution delay.
constexpr milliseconds kAfterA{15};

// ------------------------------------------------------------------ tests

Task<void> resolves_and_caches(Fixture& f) {
  auto r = co_await f.resolver->resolve("www.test");
  EXPECT_TRUE(r.ok()) << r.error().message;
  if (r) {
    EXPECT_EQ(*r, both);
  }
  EXPECT_EQ(f.resolver->stats().queries, 2u);
  EXPECT_EQ(f.resolver->stats().cache_misses, 1u);
  auto again = co_await f.resolver->resolve("WWW.Test.");
  EXPECT_TRUE(again.ok());
  if (again) {
    EXPECT_EQ(*again, both);
  }
  EXPECT_EQ(f.resolver->stats().cache_hits, 1u);
  EXPECT_EQ(f.resolver->stats().queries, 2u);
  EXPECT_EQ(f.primary.count("www.test", 1), 1);
  EXPECT_EQ(f.primary.count("www.test", 28), 1);
}

TEST(Resolver, ResolvesBothFamiliesAndServesRepeatsFromCache) {
  Fixture f;
  // AAAA a little after A, so both make the result (a positive AAAA ends the wait).
  f.primary.add("www.test",
                {.a = {ip("192.0.2.1")}, .aaaa = {ip("2001:db8::1")}, .aaaa_delay = kAfterA});
  f.settings.servers = {f.primary.address()};
  run(f, resolves_and_caches);
}

Task<void> ttl_expiry(Fixture& f) {
  auto r = co_await f.resolver->resolve("short.test");
  EXPECT_TRUE(r.ok());
  co_await sleep_for(*f.worker, milliseconds(1100));
  auto again = co_await f.resolver->resolve("short.test");
  EXPECT_TRUE(again.ok());
  EXPECT_EQ(f.resolver->stats().cache_misses, 2u);
  EXPECT_EQ(f.resolver->stats().cache_hits, 0u);
  EXPECT_EQ(f.primary.count("short.test", 1), 2);
  EXPECT_EQ(f.primary.count("short.test", 28), 2);
}

TEST(Resolver, RespectsRecordTtl) {
  Fixture f;
  f.primary.add(
      "short.test",
      {.a = {ip("192.0.2.1")}, .aaaa = {ip("2001:db8::1")}, .ttl = 1, .aaaa_delay = kAfterA});
  f.settings.servers = {f.primary.address()};
  run(f, ttl_expiry);
}

Task<void> max_ttl_clamps(Fixture& f) {
  EXPECT_TRUE((co_await f.resolver->resolve("long.test")).ok());
  EXPECT_TRUE((co_await f.resolver->resolve("long.test")).ok());
  EXPECT_EQ(f.primary.count("long.test", 1), 1);
  co_await sleep_for(*f.worker, milliseconds(250));
  EXPECT_TRUE((co_await f.resolver->resolve("long.test")).ok());
  EXPECT_EQ(f.primary.count("long.test", 1), 2);
}

TEST(Resolver, ClampsTtlToMaxTtl) {
  Fixture f;
  f.primary.add("long.test", {.a = {ip("192.0.2.1")}, .ttl = 86400});
  f.settings.servers = {f.primary.address()};
  f.settings.max_ttl = milliseconds(200);
  run(f, max_ttl_clamps);
}

Task<void> negative_caching(Fixture& f) {
  auto r = co_await f.resolver->resolve("nx.test");
  EXPECT_FALSE(r.ok());
  if (!r) {
    EXPECT_EQ(r.error().message, "dns_error: NXDOMAIN for nx.test");
    EXPECT_EQ(r.error().source, ErrorSource::kUpstream);
    EXPECT_FALSE(r.error().retryable);
  }
  auto again = co_await f.resolver->resolve("nx.test");
  EXPECT_FALSE(again.ok());
  EXPECT_EQ(f.resolver->stats().cache_hits, 1u);
  EXPECT_EQ(f.resolver->stats().failures, 2u);
  EXPECT_EQ(f.primary.count("nx.test", 1), 1);
  // The SOA says 1 s (min of its TTL and MINIMUM).
  co_await sleep_for(*f.worker, milliseconds(1100));
  EXPECT_FALSE((co_await f.resolver->resolve("nx.test")).ok());
  EXPECT_EQ(f.primary.count("nx.test", 1), 2);

  // NODATA for AAAA is cached too: a v4-only name is then a full cache hit.
  auto v4 = co_await f.resolver->resolve("v4only.test");
  EXPECT_TRUE(v4.ok());
  if (v4) {
    EXPECT_EQ(*v4, std::vector<IpAddress>{ip("192.0.2.4")});
  }
  auto hits = f.resolver->stats().cache_hits;
  EXPECT_TRUE((co_await f.resolver->resolve("v4only.test")).ok());
  EXPECT_EQ(f.resolver->stats().cache_hits, hits + 1);
  EXPECT_EQ(f.primary.count("v4only.test", 28), 1);

  auto nodata = co_await f.resolver->resolve("empty.test");
  EXPECT_FALSE(nodata.ok());
  if (!nodata) {
    EXPECT_EQ(nodata.error().message.rfind("dns_error: NODATA", 0), 0u);
  }
}

TEST(Resolver, CachesNegativeAnswersForTheSoaTtl) {
  Fixture f;
  f.primary.add("nx.test", {.nxdomain = true, .soa_ttl = 60, .soa_minimum = 1});
  f.primary.add("v4only.test", {.a = {ip("192.0.2.4")}});
  f.primary.add("empty.test", {});
  f.settings.servers = {f.primary.address()};
  run(f, negative_caching);
}

Task<void> negative_ttl_cap(Fixture& f) {
  EXPECT_FALSE((co_await f.resolver->resolve("nx.test")).ok());
  EXPECT_FALSE((co_await f.resolver->resolve("nx.test")).ok());
  EXPECT_EQ(f.primary.count("nx.test", 1), 1);
  co_await sleep_for(*f.worker, milliseconds(250));
  EXPECT_FALSE((co_await f.resolver->resolve("nx.test")).ok());
  EXPECT_EQ(f.primary.count("nx.test", 1), 2);
}

TEST(Resolver, NegativeTtlCapsTheSoaTtl) {
  Fixture f;
  f.primary.add("nx.test", {.nxdomain = true, .soa_ttl = 3600, .soa_minimum = 3600});
  f.settings.servers = {f.primary.address()};
  f.settings.negative_ttl = milliseconds(200);
  run(f, negative_ttl_cap);
}

Task<void> uses_fallback(Fixture& f) {
  auto r = co_await f.resolver->resolve("www.test");
  EXPECT_TRUE(r.ok()) << (r ? "" : r.error().message);
  if (r) {
    EXPECT_EQ(*r, both);
  }
  EXPECT_EQ(f.resolver->stats().fallback_used, 2u);
  EXPECT_EQ(f.resolver->stats().queries, 4u);
  EXPECT_EQ(f.resolver->stats().failures, 0u);
  EXPECT_EQ(f.fallback.count("www.test", 1), 1);
  EXPECT_EQ(f.fallback.count("www.test", 28), 1);
  EXPECT_GE(f.primary.count("www.test", 1), 1);
}

TEST(Resolver, FallsBackWhenThePrimaryIsSilent) {
  Fixture f;
  f.primary.set_mode(FakeDnsServer::Mode::kSilent);
  f.fallback.add("www.test",
                 {.a = {ip("192.0.2.1")}, .aaaa = {ip("2001:db8::1")}, .aaaa_delay = kAfterA});
  f.settings.servers = {f.primary.address()};
  f.settings.fallback_servers = {f.fallback.address()};
  f.settings.timeout = milliseconds(150);
  f.settings.attempts = 1;
  run(f, uses_fallback);
}

TEST(Resolver, FallsBackOnServfail) {
  Fixture f;
  f.primary.set_mode(FakeDnsServer::Mode::kServfail);
  f.fallback.add("www.test",
                 {.a = {ip("192.0.2.1")}, .aaaa = {ip("2001:db8::1")}, .aaaa_delay = kAfterA});
  f.settings.servers = {f.primary.address()};
  f.settings.fallback_servers = {f.fallback.address()};
  run(f, uses_fallback);
}

Task<void> nxdomain_is_an_answer(Fixture& f) {
  auto r = co_await f.resolver->resolve("nx.test");
  EXPECT_FALSE(r.ok());
  EXPECT_EQ(f.resolver->stats().fallback_used, 0u);
  EXPECT_EQ(f.fallback.total(), 0);
}

TEST(Resolver, NxdomainDoesNotGoToTheFallback) {
  Fixture f;
  f.primary.add("nx.test", {.nxdomain = true});
  f.settings.servers = {f.primary.address()};
  f.settings.fallback_servers = {f.fallback.address()};
  run(f, nxdomain_is_an_answer);
}

Task<void> times_out(Fixture& f) {
  auto start = Steady::now();
  auto r = co_await f.resolver->resolve("www.test");
  auto took = Steady::now() - start;
  EXPECT_FALSE(r.ok());
  if (!r) {
    EXPECT_EQ(r.error().message.rfind("dns_timeout: ", 0), 0u) << r.error().message;
    EXPECT_TRUE(r.error().retryable);
    EXPECT_EQ(r.error().code, ETIMEDOUT);
  }
  EXPECT_EQ(f.resolver->stats().failures, 1u);
  // Two tries: 100 ms, then c-ares doubles it.
  EXPECT_GE(took, milliseconds(250));
  EXPECT_LT(took, milliseconds(2000));
  EXPECT_EQ(f.primary.count("www.test", 1), 2);
}

TEST(Resolver, TimesOutWithDnsTimeout) {
  Fixture f;
  f.primary.set_mode(FakeDnsServer::Mode::kSilent);
  f.settings.servers = {f.primary.address()};
  f.settings.timeout = milliseconds(100);
  f.settings.attempts = 2;
  run(f, times_out);
}

Task<void> literals_and_bad_names(Fixture& f) {
  for (const char* lit : {"192.0.2.7", "2001:db8::5", "[2001:db8::5]"}) {
    auto r = co_await f.resolver->resolve(lit);
    EXPECT_TRUE(r.ok());
    if (r) {
      EXPECT_EQ(r->size(), 1u);
    }
  }
  auto lh = co_await f.resolver->resolve("localhost");
  EXPECT_TRUE(lh.ok());
  if (lh) {
    EXPECT_EQ(*lh, (std::vector<IpAddress>{ip("::1"), ip("127.0.0.1")}));
  }
  auto bad = co_await f.resolver->resolve("bad name!");
  EXPECT_FALSE(bad.ok());
  if (!bad) {
    EXPECT_EQ(bad.error().message.rfind("dns_error: ", 0), 0u);
  }
  EXPECT_EQ(f.resolver->stats().queries, 0u);
  EXPECT_EQ(f.primary.total(), 0);
}

TEST(Resolver, IpLiteralsAndLocalhostNeedNoDns) {
  Fixture f;
  f.settings.servers = {f.primary.address()};
  run(f, literals_and_bad_names);
}

Task<void> a_waits_resolution_delay(Fixture& f) {
  auto start = Steady::now();
  auto r = co_await f.resolver->resolve("slow6.test");
  auto took = Steady::now() - start;
  EXPECT_TRUE(r.ok());
  if (r) {
    EXPECT_EQ(*r, std::vector<IpAddress>{ip("192.0.2.1")});
  }
  EXPECT_GE(took, milliseconds(50));
  EXPECT_LT(took, milliseconds(300));
  // The late AAAA answer still lands in the cache.
  co_await sleep_for(*f.worker, milliseconds(450));
  auto later = co_await f.resolver->resolve("slow6.test");
  EXPECT_TRUE(later.ok());
  if (later) {
    EXPECT_EQ(*later, both);
  }
  EXPECT_EQ(f.resolver->stats().cache_hits, 1u);
}

TEST(Resolver, Rfc8305PositiveAWaitsResolutionDelayForAaaa) {
  Fixture f;
  f.primary.add(
      "slow6.test",
      {.a = {ip("192.0.2.1")}, .aaaa = {ip("2001:db8::1")}, .aaaa_delay = milliseconds(400)});
  f.settings.servers = {f.primary.address()};
  f.settings.resolution_delay = milliseconds(50);
  run(f, a_waits_resolution_delay);
}

Task<void> aaaa_returns_at_once(Fixture& f) {
  auto start = Steady::now();
  auto r = co_await f.resolver->resolve("slow4.test");
  auto took = Steady::now() - start;
  EXPECT_TRUE(r.ok());
  if (r) {
    EXPECT_EQ(*r, std::vector<IpAddress>{ip("2001:db8::1")});
  }
  EXPECT_LT(took, milliseconds(300));
  co_await sleep_for(*f.worker, milliseconds(450));
  auto later = co_await f.resolver->resolve("slow4.test");
  if (later) {
    EXPECT_EQ(*later, both);
  }
  EXPECT_EQ(f.resolver->stats().cache_hits, 1u);
}

TEST(Resolver, Rfc8305PositiveAaaaReturnsWithoutWaitingForA) {
  Fixture f;
  f.primary.add(
      "slow4.test",
      {.a = {ip("192.0.2.1")}, .aaaa = {ip("2001:db8::1")}, .a_delay = milliseconds(400)});
  f.settings.servers = {f.primary.address()};
  run(f, aaaa_returns_at_once);
}

Task<void> resolve_into(Resolver* r, std::string host,
                        std::optional<Result<std::vector<IpAddress>>>* out) {
  out->emplace(co_await r->resolve(std::move(host)));
}

Task<void> concurrent_share(Fixture& f) {
  std::optional<Result<std::vector<IpAddress>>> r1, r2;
  runtime::JoinSet js;
  js.start(resolve_into(f.resolver.get(), "www.test", &r1));
  js.start(resolve_into(f.resolver.get(), "www.test", &r2));
  co_await js.wait();
  EXPECT_TRUE(r1 && r1->ok());
  EXPECT_TRUE(r2 && r2->ok());
  EXPECT_EQ(f.primary.count("www.test", 1), 1);
  EXPECT_EQ(f.primary.count("www.test", 28), 1);
  EXPECT_EQ(f.resolver->stats().queries, 2u);
}

TEST(Resolver, ConcurrentCallsShareQuestions) {
  Fixture f;
  f.primary.add("www.test", {.a = {ip("192.0.2.1")},
                             .aaaa = {ip("2001:db8::1")},
                             .a_delay = milliseconds(30),
                             .aaaa_delay = milliseconds(30)});
  f.settings.servers = {f.primary.address()};
  run(f, concurrent_share);
}

Task<void> close_fails_pending(Fixture& f) {
  std::optional<Result<std::vector<IpAddress>>> r;
  runtime::JoinSet js;
  js.start(resolve_into(f.resolver.get(), "www.test", &r));
  co_await sleep_for(*f.worker, milliseconds(20));
  co_await f.resolver->close();
  co_await js.wait();
  EXPECT_TRUE(r && !r->ok());
  if (r && !r->ok()) {
    EXPECT_EQ(r->error().message, "dns_error: resolver closed for www.test");
  }
  auto after = co_await f.resolver->resolve("other.test");
  EXPECT_FALSE(after.ok());
}

TEST(Resolver, CloseEndsPendingResolves) {
  Fixture f;
  f.primary.set_mode(FakeDnsServer::Mode::kSilent);
  f.settings.servers = {f.primary.address()};
  run(f, close_fails_pending);
}

TEST(SoaNegativeTtl, ReadsAuthoritySectionAndRejectsTruncation) {
  // A query for nx.test, type A.
  std::vector<std::uint8_t> q = {0x12, 0x34, 0x01, 0x00, 0,   1,   0,   0, 0, 0, 0, 0, 2,
                                 'n',  'x',  4,    't',  'e', 's', 't', 0, 0, 1, 0, 1};
  std::map<std::string, Zone> zones;
  zones["nx.test"] = {.nxdomain = true, .soa_ttl = 90, .soa_minimum = 300};
  std::string name;
  unsigned type = 0;
  auto resp = build_response(q, zones, -1, &name, &type);
  ASSERT_TRUE(resp);
  EXPECT_EQ(soa_negative_ttl(*resp), 90u);
  zones["nx.test"].soa_ttl = 0x80000001;  // RFC 2181: treated as 0
  EXPECT_EQ(soa_negative_ttl(*build_response(q, zones, -1, &name, &type)), 0u);
  for (std::size_t n = 0; n < resp->size(); ++n)
    EXPECT_FALSE(soa_negative_ttl(std::span(resp->data(), n))) << n;
  zones["nx.test"] = {.a = {ip("192.0.2.1")}};
  EXPECT_FALSE(soa_negative_ttl(*build_response(q, zones, -1, &name, &type)));
}

}  // namespace
}  // namespace ramjet::dns
