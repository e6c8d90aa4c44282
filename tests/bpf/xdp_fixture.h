// Test fixture for xdp_classify: loads the skeleton (fresh per test), installs
// rules the way the datapath control plane will (prefix tries with inherited
// rule sets), runs frames through BPF_PROG_TEST_RUN and reads stats/flows.
#pragma once

#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include <gtest/gtest.h>

#include <algorithm>
#include <array>
#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "datapath.skel.h"
#include "packet_builder.h"
#include "ramjet/abi/ramjet.h"

namespace ramjet::test {

struct SkelDeleter {
  void operator()(datapath* s) const { datapath__destroy(s); }
};
using SkelPtr = std::unique_ptr<datapath, SkelDeleter>;

struct Knobs {
  uint8_t default_action = RAMJET_ACTION_PASS;
  uint8_t pass_fragments = 0;
  uint8_t emit_flow_events = 1;
  uint32_t drop_sample_rate = 0;
};

struct Cidr {
  IpAddr addr;
  uint32_t bits = 0;

  static Cidr parse(const std::string& text) {
    auto slash = text.find('/');
    Cidr c;
    c.addr = IpAddr::parse(text.substr(0, slash));
    c.bits = slash == std::string::npos ? uint32_t(c.addr.size() * 8)
                                        : uint32_t(std::stoul(text.substr(slash + 1)));
    // Canonicalize: clear host bits so equal prefixes compare equal.
    for (uint32_t i = c.bits; i < 128; i++) c.addr.bytes[i / 8] &= uint8_t(~(0x80 >> (i % 8)));
    return c;
  }
  bool contains(const Cidr& other) const {
    if (addr.v6 != other.addr.v6 || bits > other.bits) return false;
    for (uint32_t i = 0; i < bits; i++) {
      uint8_t m = uint8_t(0x80 >> (i % 8));
      if ((addr.bytes[i / 8] & m) != (other.addr.bytes[i / 8] & m)) return false;
    }
    return true;
  }
  ramjet_lpm_key lpm_key() const {
    ramjet_lpm_key k{};
    k.prefixlen = RAMJET_LPM_PREFIXLEN(bits);
    k.family = addr.v6 ? RAMJET_FAMILY_IPV6 : RAMJET_FAMILY_IPV4;
    std::memcpy(k.addr, addr.bytes.data(), addr.size());
    return k;
  }
  bool operator<(const Cidr& o) const {
    return std::tie(addr.v6, addr.bytes, bits) < std::tie(o.addr.v6, o.addr.bytes, o.bits);
  }
};

struct RuleSpec {
  std::string src = "0.0.0.0/0";
  std::string dst = "0.0.0.0/0";
  ramjet_action action = RAMJET_ACTION_PASS;
  uint8_t proto = 0;
  uint16_t port_min = RAMJET_RULE_ANY_PORT_MIN;
  uint16_t port_max = RAMJET_RULE_ANY_PORT_MAX;
  uint32_t ifindex = 0;
  uint32_t rate_pps = 0;
  uint32_t rate_burst = 0;
  uint32_t rule_id = 0;  // 0: slot + 100
  uint32_t endpoint_id = 0;
  uint8_t fallback = RAMJET_FALLBACK_NONE;  // ESCALATE: on_engine_unavailable
};

struct RunResult {
  int retval = -1;
  Bytes out;
};

using StatArray = std::array<uint64_t, RAMJET_STAT__COUNT>;

class XdpClassify {
 public:
  // Loads with small tables (tests never need 64k flows and load is faster).
  // On a kernel that refuses bpf_xdp_adjust_meta to XDP the object loads only with
  // xdp_metadata off (as ramjetd loads it there); metadata() tells which.
  // The first fixture finds out (libbpf logs that refusal once); the rest load as it did.
  explicit XdpClassify(const Knobs& knobs = {}) {
    static bool kernel_allows_metadata = true;
    for (bool metadata : {true, false}) {
      if (metadata && !kernel_allows_metadata) continue;
      skel_.reset(datapath__open());
      if (!skel_) throw std::runtime_error("datapath__open failed");
      skel_->data->default_action = knobs.default_action;
      skel_->rodata->pass_fragments = knobs.pass_fragments;
      skel_->rodata->emit_flow_events = knobs.emit_flow_events;
      skel_->rodata->drop_sample_rate = knobs.drop_sample_rate;
      skel_->rodata->xdp_metadata = metadata ? 1 : 0;
      bpf_map__set_max_entries(skel_->maps.flows, 1024);
      bpf_map__set_max_entries(skel_->maps.ratelimit, 1024);
      bpf_map__set_max_entries(skel_->maps.denylist, 1024);
      int err = datapath__load(skel_.get());
      if (err == 0) {
        metadata_ = metadata;
        return;
      }
      if (!metadata) throw std::runtime_error("datapath__load failed: " + std::to_string(err));
      kernel_allows_metadata = false;
    }
  }

  // Whether XDP can leave TC a ramjet_xdp_meta note on this kernel.
  bool metadata() const { return metadata_; }

  datapath* skel() const { return skel_.get(); }
  int prog_fd() const { return bpf_program__fd(skel_->progs.xdp_classify); }

  RunResult run(const Bytes& frame, uint32_t repeat = 1, uint32_t* duration_ns = nullptr) const {
    return run_prog(prog_fd(), nullptr, frame, repeat, duration_ns);
  }

  // The same frame through the tc hook's program (datapath.fastpath_hook tc), as an
  // skb received on loopback (the XDP runs' ingress device too).
  RunResult run_tc(const Bytes& frame) const {
    __sk_buff ctx{};
    ctx.ifindex = 1;
    ctx.ingress_ifindex = 1;
    return run_prog(bpf_program__fd(skel_->progs.tc_classify), &ctx, frame, 1, nullptr);
  }

 private:
  RunResult run_prog(int fd, __sk_buff* ctx, const Bytes& frame, uint32_t repeat,
                     uint32_t* duration_ns) const {
    Bytes in = frame;
    RunResult r;
    r.out.resize(in.size() + 256);
    LIBBPF_OPTS(bpf_test_run_opts, opts);
    if (ctx) {
      opts.ctx_in = ctx;
      opts.ctx_size_in = sizeof(*ctx);
    }
    opts.data_in = in.data();
    opts.data_out = r.out.data();
    opts.data_size_in = uint32_t(in.size());
    opts.data_size_out = uint32_t(r.out.size());
    opts.repeat = repeat;
    int err = bpf_prog_test_run_opts(fd, &opts);
    if (err) throw std::runtime_error("bpf_prog_test_run_opts: " + std::to_string(err));
    r.retval = int(opts.retval);
    r.out.resize(opts.data_size_out);
    if (duration_ns) *duration_ns = opts.duration;
    return r;
  }

 public:
  // Per-stat packet counts, summed over CPUs.
  StatArray stats() const {
    StatArray total{};
    int ncpu = libbpf_num_possible_cpus();
    std::vector<ramjet_stat_value> values(static_cast<size_t>(ncpu));
    int fd = bpf_map__fd(skel_->maps.stats);
    for (uint32_t i = 0; i < RAMJET_STAT__COUNT; i++) {
      if (bpf_map_lookup_elem(fd, &i, values.data())) continue;
      for (auto& v : values) total[i] += v.packets;
    }
    return total;
  }

  // Compiles rule specs into `rules` + the two prefix tries (slot = priority).
  void set_rules(const std::vector<RuleSpec>& specs) {
    clear(skel_->maps.src_prefixes);
    clear(skel_->maps.dst_prefixes);
    ramjet_rule empty{};
    for (uint32_t i = 0; i < RAMJET_MAX_RULES; i++) update(skel_->maps.rules, &i, &empty);
    std::vector<Cidr> srcs, dsts;
    for (uint32_t i = 0; i < specs.size(); i++) {
      const RuleSpec& s = specs[i];
      ramjet_rule r{};
      Cidr src = Cidr::parse(s.src), dst = Cidr::parse(s.dst);
      r.src = src.lpm_key();
      r.dst = dst.lpm_key();
      r.rule_id = s.rule_id ? s.rule_id : 100 + i;
      r.endpoint_id = s.endpoint_id;
      r.ifindex = s.ifindex;
      r.rate_pps = s.rate_pps;
      r.rate_burst = s.rate_burst;
      r.dst_port_min_host = s.port_min;
      r.dst_port_max_host = s.port_max;
      r.proto = s.proto;
      r.action = uint8_t(s.action);
      r.fallback = s.fallback;
      update(skel_->maps.rules, &i, &r);
      srcs.push_back(src);
      dsts.push_back(dst);
    }
    std::vector<ramjet_rule_set> filters(RAMJET_RULE_FILTERS);
    for (uint32_t i = 0; i < specs.size(); i++) {
      ramjet_rule r{};
      bpf_map_lookup_elem(bpf_map__fd(skel_->maps.rules), &i, &r);
      ramjet_rule_filters_add(filters.data(), i, &r);
    }
    write_filters(filters);
    install_trie(skel_->maps.src_prefixes, srcs);
    install_trie(skel_->maps.dst_prefixes, dsts);
    // The contract of maps.h: rule_count after the rules, before the generation.
    skel_->data->rule_count = uint32_t(specs.size());
    skel_->data->policy_generation++;
  }

  // Keeps deny_count as maps.h asks: +1 before inserting a new prefix, -1 after
  // deleting one.
  void deny(const std::string& cidr, uint64_t expires_ns = 0) {
    ramjet_lpm_key k = Cidr::parse(cidr).lpm_key();
    ramjet_deny_entry e{};
    e.expires_ns = expires_ns;
    bool present = bpf_map_lookup_elem(bpf_map__fd(skel_->maps.denylist), &k, &e) == 0;
    e.expires_ns = expires_ns;
    if (!present) __atomic_fetch_add(&skel_->data->deny_count, 1, __ATOMIC_SEQ_CST);
    update(skel_->maps.denylist, &k, &e);
  }
  void undeny(const std::string& cidr) {
    ramjet_lpm_key k = Cidr::parse(cidr).lpm_key();
    if (bpf_map_delete_elem(bpf_map__fd(skel_->maps.denylist), &k) == 0)
      __atomic_fetch_sub(&skel_->data->deny_count, 1, __ATOMIC_SEQ_CST);
  }

  // All RAMJET_RULE_FILTERS sets in one batch (as ramjetd writes them).
  void write_filters(const std::vector<ramjet_rule_set>& filters) {
    std::vector<uint32_t> keys(filters.size());
    for (uint32_t i = 0; i < keys.size(); i++) keys[i] = i;
    uint32_t n = uint32_t(keys.size());
    if (bpf_map_update_batch(bpf_map__fd(skel_->maps.rule_filters), keys.data(), filters.data(), &n,
                             nullptr) != 0 ||
        n != keys.size())
      throw std::runtime_error("rule_filters batch update failed");
  }

  void put_flow(const ramjet_flow_key& k, const ramjet_flow& f) {
    update(skel_->maps.flows, &k, &f);
  }

  std::vector<std::pair<ramjet_flow_key, ramjet_flow>> flows() const {
    std::vector<std::pair<ramjet_flow_key, ramjet_flow>> all;
    int fd = bpf_map__fd(skel_->maps.flows);
    ramjet_flow_key key{}, next{};
    void* prev = nullptr;
    while (bpf_map_get_next_key(fd, prev, &next) == 0) {
      ramjet_flow f{};
      if (bpf_map_lookup_elem(fd, &next, &f) == 0) all.emplace_back(next, f);
      key = next;
      prev = &key;
    }
    return all;
  }

 private:
  template <typename K, typename V>
  static void update(bpf_map* map, const K* k, const V* v) {
    int err = bpf_map_update_elem(bpf_map__fd(map), k, v, BPF_ANY);
    if (err) throw std::runtime_error(std::string("map update failed: ") + bpf_map__name(map));
  }

  static void clear(bpf_map* map) {
    int fd = bpf_map__fd(map);
    ramjet_lpm_key k{};
    while (bpf_map_get_next_key(fd, nullptr, &k) == 0) bpf_map_delete_elem(fd, &k);
  }

  // Each distinct prefix maps to the set of rules whose CIDR contains it, so the
  // longest-prefix match alone yields every applicable rule.
  static void install_trie(bpf_map* map, const std::vector<Cidr>& per_rule) {
    std::map<Cidr, ramjet_rule_set> sets;
    for (const Cidr& p : per_rule) sets.emplace(p, ramjet_rule_set{});
    for (auto& [prefix, set] : sets)
      for (size_t i = 0; i < per_rule.size(); i++)
        if (per_rule[i].contains(prefix)) set.words[i / 64] |= uint64_t(1) << (i % 64);
    for (auto& [prefix, set] : sets) {
      ramjet_lpm_key k = prefix.lpm_key();
      update(map, &k, &set);
    }
  }

  SkelPtr skel_;
  bool metadata_ = true;
};

// The ring buffer's records, drained after the runs that emitted them.
struct Events {
  std::vector<Bytes> records;
  static int on_record(void* ctx, void* data, size_t size) {
    auto* self = static_cast<Events*>(ctx);
    auto* p = static_cast<uint8_t*>(data);
    self->records.emplace_back(p, p + size);
    return 0;
  }
  void drain(XdpClassify& xdp) {
    ring_buffer* rb =
        ring_buffer__new(bpf_map__fd(xdp.skel()->maps.events), &Events::on_record, this, nullptr);
    ASSERT_NE(rb, nullptr);
    ring_buffer__consume(rb);
    ring_buffer__free(rb);
  }
  template <typename T>
  std::vector<T> of_type(uint16_t type) const {
    std::vector<T> out;
    for (const Bytes& r : records) {
      ramjet_event_header h;
      std::memcpy(&h, r.data(), sizeof(h));
      if (h.type != type) continue;
      EXPECT_EQ(r.size(), sizeof(T));
      T t;
      std::memcpy(&t, r.data(), sizeof(T));
      out.push_back(t);
    }
    return out;
  }
};

// Packet-verdict stats (all classes but EVENT) that changed between two snapshots.
inline std::map<std::string, int64_t> verdict_deltas(const StatArray& before,
                                                     const StatArray& after) {
  std::map<std::string, int64_t> d;
  for (size_t i = 0; i < RAMJET_STAT__COUNT; i++)
    if (ramjet_stat_classes[i] != RAMJET_STAT_CLASS_EVENT && after[i] != before[i])
      d[ramjet_stat_names[i]] = int64_t(after[i] - before[i]);
  return d;
}

}  // namespace ramjet::test
