#include "datapath/synthetic_flows.h"

#include <bpf/bpf.h>
#include <netinet/in.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <vector>

#include "datapath/flow_table.h"

namespace ramjet::datapath {

Result<std::size_t> add_synthetic_flows(const std::string& pin_dir, std::size_t count,
                                        std::uint64_t first_id) {
  std::string path = pin_dir + "/flows";
  int fd = bpf_obj_get(path.c_str());
  if (fd < 0) return Error::kernel(errno, "cannot open " + path + ": " + std::strerror(errno));
  std::uint64_t now = monotonic_now_ns();
  std::uint64_t state = 0x9e3779b97f4a7c15ull;
  auto rnd = [&] {  // xorshift64: reproducible, no <random> state to carry around
    state ^= state << 13;
    state ^= state >> 7;
    state ^= state << 17;
    return state;
  };
  static constexpr std::uint8_t kVerdicts[] = {RAMJET_ACTION_FASTPATH, RAMJET_ACTION_FASTPATH,
                                               RAMJET_ACTION_FASTPATH, RAMJET_ACTION_ESCALATE,
                                               RAMJET_ACTION_PASS};
  std::vector<ramjet_flow_key> keys;
  std::vector<ramjet_flow> values;
  keys.reserve(kFlowBatch);
  values.reserve(kFlowBatch);
  auto flush = [&]() -> Result<void> {
    std::uint32_t n = static_cast<std::uint32_t>(keys.size());
    LIBBPF_OPTS(bpf_map_batch_opts, opts);
    if (n && bpf_map_update_batch(fd, keys.data(), values.data(), &n, &opts) != 0) {
      int err = errno;
      return Error::kernel(err, "cannot fill " + path + ": " + std::strerror(err));
    }
    keys.clear();
    values.clear();
    return {};
  };
  for (std::size_t i = 0; i < count; ++i) {
    // Client 10.64.0.0/10 + i (unique), server one of 16, port by protocol.
    std::uint32_t client = htonl(0x0a400000u + static_cast<std::uint32_t>(i));
    std::uint32_t server = htonl(0x0ac80000u + static_cast<std::uint32_t>(i % 16));
    bool tcp = i % 4 != 3;
    std::uint16_t cport = htons(static_cast<std::uint16_t>(1024 + i % 60000));
    std::uint16_t sport = htons(tcp ? 443 : 53);
    ramjet_flow_key k = flow_key_of(
        SocketAddress(IpAddress::from_bytes(IpAddress::Family::kV4, &client), ntohs(cport)),
        SocketAddress(IpAddress::from_bytes(IpAddress::Family::kV4, &server), ntohs(sport)),
        tcp ? IPPROTO_TCP : IPPROTO_UDP);
    ramjet_flow f{};
    f.flow_id = first_id + i;
    std::uint64_t age = rnd() % 60'000'000'000ull;
    f.first_seen_ns = now - age;
    f.last_seen_ns = now - age / (1 + rnd() % 50);
    f.origin_side = std::memcmp(k.addr_lo, &client, 4) == 0 ? 0 : 1;
    f.verdict = kVerdicts[i % std::size(kVerdicts)];
    f.reason = f.verdict == RAMJET_ACTION_FASTPATH   ? RAMJET_STAT_FASTPATH_REDIRECT
               : f.verdict == RAMJET_ACTION_ESCALATE ? RAMJET_STAT_ESCALATE
                                                     : RAMJET_STAT_PASS_DEFAULT;
    f.escalated = f.verdict == RAMJET_ACTION_ESCALATE;
    f.rule_index = RAMJET_RULE_INDEX_NONE;
    f.ifindex = 2;
    for (int d = 0; d < 2; ++d) {
      f.dir[d].packets = 1 + rnd() % 5000;
      f.dir[d].bytes = f.dir[d].packets * (64 + rnd() % 1400);
      f.tcp_flags[d] = tcp ? RAMJET_TCP_SYN | RAMJET_TCP_ACK | RAMJET_TCP_PSH : 0;
    }
    keys.push_back(k);
    values.push_back(f);
    if (keys.size() == kFlowBatch)
      if (auto r = flush(); !r.ok()) {
        ::close(fd);
        return r.error();
      }
  }
  auto r = flush();
  std::size_t held = 0;
  if (r.ok())
    r = read_flow_batches(fd, [&](auto k, auto) {
      held += k.size();
      return true;
    });
  ::close(fd);
  if (!r.ok()) return r.error();
  return held;
}

}  // namespace ramjet::datapath
