// The ABI headers compiled by g++ must lay structs out exactly as clang -target
// bpf did: compares sizeof/offsetof here with the BTF of the object embedded in
// the skeleton (member names, offsets, sizes and the total size).
#include <bpf/btf.h>
#include <bpf/libbpf.h>
#include <gtest/gtest.h>

#include <cstddef>
#include <cstring>
#include <map>
#include <string>
#include <vector>

#include "ramjet/abi/ramjet.h"
#include "xdp_fixture.h"

namespace ramjet::test {
namespace {

struct Member {
  std::string name;
  size_t offset;
  size_t size;
};
struct Layout {
  std::string name;
  size_t size;
  std::vector<Member> members;
};

#define RJ_MEMBER(type, m)                             \
  Member {                                             \
#m, offsetof(type, m), sizeof(((type*)nullptr)->m) \
  }

std::vector<Layout> cxx_layouts() {
  return {
      {"ramjet_flow_key",
       sizeof(ramjet_flow_key),
       {RJ_MEMBER(ramjet_flow_key, addr_lo), RJ_MEMBER(ramjet_flow_key, addr_hi),
        RJ_MEMBER(ramjet_flow_key, port_lo), RJ_MEMBER(ramjet_flow_key, port_hi),
        RJ_MEMBER(ramjet_flow_key, family), RJ_MEMBER(ramjet_flow_key, proto),
        RJ_MEMBER(ramjet_flow_key, pad)}},
      {"ramjet_flow_counters",
       sizeof(ramjet_flow_counters),
       {RJ_MEMBER(ramjet_flow_counters, packets), RJ_MEMBER(ramjet_flow_counters, bytes)}},
      {"ramjet_flow",
       sizeof(ramjet_flow),
       {RJ_MEMBER(ramjet_flow, flow_id), RJ_MEMBER(ramjet_flow, first_seen_ns),
        RJ_MEMBER(ramjet_flow, last_seen_ns), RJ_MEMBER(ramjet_flow, policy_gen),
        RJ_MEMBER(ramjet_flow, dir), RJ_MEMBER(ramjet_flow, rule_index),
        RJ_MEMBER(ramjet_flow, rule_id), RJ_MEMBER(ramjet_flow, endpoint_id),
        RJ_MEMBER(ramjet_flow, ifindex), RJ_MEMBER(ramjet_flow, verdict),
        RJ_MEMBER(ramjet_flow, reason), RJ_MEMBER(ramjet_flow, origin_side),
        RJ_MEMBER(ramjet_flow, escalated), RJ_MEMBER(ramjet_flow, tcp_flags),
        RJ_MEMBER(ramjet_flow, fallback), RJ_MEMBER(ramjet_flow, fallback_cause),
        RJ_MEMBER(ramjet_flow, nexthop)}},
      {"ramjet_flow_nexthop",
       sizeof(ramjet_flow_nexthop),
       {RJ_MEMBER(ramjet_flow_nexthop, checked_ns), RJ_MEMBER(ramjet_flow_nexthop, ifindex),
        RJ_MEMBER(ramjet_flow_nexthop, max_len), RJ_MEMBER(ramjet_flow_nexthop, dmac),
        RJ_MEMBER(ramjet_flow_nexthop, smac), RJ_MEMBER(ramjet_flow_nexthop, pad)}},
      {"ramjet_lpm_key",
       sizeof(ramjet_lpm_key),
       {RJ_MEMBER(ramjet_lpm_key, prefixlen), RJ_MEMBER(ramjet_lpm_key, family),
        RJ_MEMBER(ramjet_lpm_key, addr), RJ_MEMBER(ramjet_lpm_key, pad)}},
      {"ramjet_rule_set", sizeof(ramjet_rule_set), {RJ_MEMBER(ramjet_rule_set, words)}},
      {"ramjet_rule",
       sizeof(ramjet_rule),
       {RJ_MEMBER(ramjet_rule, src), RJ_MEMBER(ramjet_rule, dst), RJ_MEMBER(ramjet_rule, rule_id),
        RJ_MEMBER(ramjet_rule, endpoint_id), RJ_MEMBER(ramjet_rule, ifindex),
        RJ_MEMBER(ramjet_rule, rate_pps), RJ_MEMBER(ramjet_rule, rate_burst),
        RJ_MEMBER(ramjet_rule, dst_port_min_host), RJ_MEMBER(ramjet_rule, dst_port_max_host),
        RJ_MEMBER(ramjet_rule, proto), RJ_MEMBER(ramjet_rule, action),
        RJ_MEMBER(ramjet_rule, fallback), RJ_MEMBER(ramjet_rule, pad)}},
      {"ramjet_deny_entry",
       sizeof(ramjet_deny_entry),
       {RJ_MEMBER(ramjet_deny_entry, expires_ns), RJ_MEMBER(ramjet_deny_entry, reason),
        RJ_MEMBER(ramjet_deny_entry, pad)}},
      {"ramjet_ratelimit_key",
       sizeof(ramjet_ratelimit_key),
       {RJ_MEMBER(ramjet_ratelimit_key, rule_index), RJ_MEMBER(ramjet_ratelimit_key, family),
        RJ_MEMBER(ramjet_ratelimit_key, pad), RJ_MEMBER(ramjet_ratelimit_key, addr)}},
      {"ramjet_class_key",
       sizeof(ramjet_class_key),
       {RJ_MEMBER(ramjet_class_key, src), RJ_MEMBER(ramjet_class_key, dst),
        RJ_MEMBER(ramjet_class_key, dst_port), RJ_MEMBER(ramjet_class_key, family),
        RJ_MEMBER(ramjet_class_key, proto)}},
      {"ramjet_class_entry",
       sizeof(ramjet_class_entry),
       {RJ_MEMBER(ramjet_class_entry, expires_ns), RJ_MEMBER(ramjet_class_entry, tag),
        RJ_MEMBER(ramjet_class_entry, action), RJ_MEMBER(ramjet_class_entry, pad)}},
      {"ramjet_xdp_meta",
       sizeof(ramjet_xdp_meta),
       {RJ_MEMBER(ramjet_xdp_meta, magic), RJ_MEMBER(ramjet_xdp_meta, endpoint_id),
        RJ_MEMBER(ramjet_xdp_meta, flow_id), RJ_MEMBER(ramjet_xdp_meta, verdict),
        RJ_MEMBER(ramjet_xdp_meta, reason), RJ_MEMBER(ramjet_xdp_meta, pad)}},
      {"ramjet_ratelimit_state",
       sizeof(ramjet_ratelimit_state),
       {RJ_MEMBER(ramjet_ratelimit_state, tokens), RJ_MEMBER(ramjet_ratelimit_state, last_ns)}},
      {"ramjet_stat_value",
       sizeof(ramjet_stat_value),
       {RJ_MEMBER(ramjet_stat_value, packets), RJ_MEMBER(ramjet_stat_value, bytes)}},
      {"ramjet_event_header",
       sizeof(ramjet_event_header),
       {RJ_MEMBER(ramjet_event_header, ts_ns), RJ_MEMBER(ramjet_event_header, ifindex),
        RJ_MEMBER(ramjet_event_header, type), RJ_MEMBER(ramjet_event_header, reason)}},
      {"ramjet_event_flow",
       sizeof(ramjet_event_flow),
       {RJ_MEMBER(ramjet_event_flow, hdr), RJ_MEMBER(ramjet_event_flow, key),
        RJ_MEMBER(ramjet_event_flow, flow_id), RJ_MEMBER(ramjet_event_flow, rule_id),
        RJ_MEMBER(ramjet_event_flow, endpoint_id), RJ_MEMBER(ramjet_event_flow, verdict),
        RJ_MEMBER(ramjet_event_flow, origin_side), RJ_MEMBER(ramjet_event_flow, pad)}},
      {"ramjet_event_fallback",
       sizeof(ramjet_event_fallback),
       {RJ_MEMBER(ramjet_event_fallback, hdr), RJ_MEMBER(ramjet_event_fallback, key),
        RJ_MEMBER(ramjet_event_fallback, flow_id), RJ_MEMBER(ramjet_event_fallback, rule_id),
        RJ_MEMBER(ramjet_event_fallback, endpoint_id), RJ_MEMBER(ramjet_event_fallback, mode),
        RJ_MEMBER(ramjet_event_fallback, cause), RJ_MEMBER(ramjet_event_fallback, origin_side),
        RJ_MEMBER(ramjet_event_fallback, pad)}},
      {"ramjet_fallback_count",
       sizeof(ramjet_fallback_count),
       {RJ_MEMBER(ramjet_fallback_count, flows)}},
      {"ramjet_rule_health",
       sizeof(ramjet_rule_health),
       {RJ_MEMBER(ramjet_rule_health, falling_back)}},
      {"ramjet_event_drop",
       sizeof(ramjet_event_drop),
       {RJ_MEMBER(ramjet_event_drop, hdr), RJ_MEMBER(ramjet_event_drop, packet_len),
        RJ_MEMBER(ramjet_event_drop, capture_len), RJ_MEMBER(ramjet_event_drop, data)}},
  };
}

class AbiLayout : public ::testing::TestWithParam<Layout> {
 protected:
  static void SetUpTestSuite() {
    skel_ = datapath__open();  // BTF is available after open; no load needed
    ASSERT_NE(skel_, nullptr);
  }
  static void TearDownTestSuite() { datapath__destroy(skel_); }
  static datapath* skel_;
};
datapath* AbiLayout::skel_ = nullptr;

TEST_P(AbiLayout, MatchesBpfObjectBtf) {
  const Layout& want = GetParam();
  const btf* b = bpf_object__btf(skel_->obj);
  ASSERT_NE(b, nullptr);
  int id = btf__find_by_name_kind(b, want.name.c_str(), BTF_KIND_STRUCT);
  ASSERT_GT(id, 0) << "struct " << want.name << " not in the object's BTF";
  EXPECT_EQ(size_t(btf__resolve_size(b, id)), want.size);

  const btf_type* t = btf__type_by_id(b, id);
  std::map<std::string, Member> got;
  const btf_member* m = btf_members(t);
  for (unsigned i = 0; i < btf_vlen(t); i++, m++) {
    ASSERT_EQ(btf_member_bitfield_size(t, i), 0u) << "ABI structs have no bitfields";
    std::string name = btf__name_by_offset(b, m->name_off);
    got[name] = {name, btf_member_bit_offset(t, i) / 8, size_t(btf__resolve_size(b, m->type))};
  }
  EXPECT_EQ(got.size(), want.members.size()) << "member count differs";
  for (const Member& w : want.members) {
    auto it = got.find(w.name);
    ASSERT_NE(it, got.end()) << want.name << "." << w.name << " missing in BTF";
    EXPECT_EQ(it->second.offset, w.offset) << want.name << "." << w.name;
    EXPECT_EQ(it->second.size, w.size) << want.name << "." << w.name;
  }
}

INSTANTIATE_TEST_SUITE_P(Abi, AbiLayout, ::testing::ValuesIn(cxx_layouts()),
                         [](const auto& info) { return info.param.name; });

TEST(AbiNames, StatAndActionTablesAreComplete) {
  for (size_t i = 0; i < RAMJET_STAT__COUNT; i++) {
    ASSERT_NE(ramjet_stat_names[i], nullptr);
    EXPECT_GT(std::strlen(ramjet_stat_names[i]), 0u);
  }
  EXPECT_STREQ(ramjet_stat_names[RAMJET_STAT_RULE_DROP], "RULE_DROP");
  EXPECT_STREQ(ramjet_stat_names[RAMJET_STAT_RATE_LIMITED], "RATE_LIMITED");
  EXPECT_EQ(ramjet_stat_classes[RAMJET_STAT_DENYLIST], RAMJET_STAT_CLASS_DROP);
  EXPECT_EQ(ramjet_stat_classes[RAMJET_STAT_FIB_NO_NEIGH], RAMJET_STAT_CLASS_PASS);
  EXPECT_STREQ(ramjet_action_names[RAMJET_ACTION_FASTPATH], "FASTPATH");
  EXPECT_STREQ(ramjet_fallback_names[RAMJET_FALLBACK_REJECT], "REJECT");
  EXPECT_STREQ(ramjet_fallback_cause_names[RAMJET_FALLBACK_CAUSE_ACCEPT_QUEUE_FULL],
               "ACCEPT_QUEUE_FULL");
}

TEST(AbiMaps, SkeletonMapsUseAbiSizes) {
  datapath* s = datapath__open();
  ASSERT_NE(s, nullptr);
  EXPECT_EQ(bpf_map__key_size(s->maps.flows), sizeof(ramjet_flow_key));
  EXPECT_EQ(bpf_map__value_size(s->maps.flows), sizeof(ramjet_flow));
  EXPECT_EQ(bpf_map__value_size(s->maps.rules), sizeof(ramjet_rule));
  EXPECT_EQ(bpf_map__max_entries(s->maps.rules), uint32_t(RAMJET_MAX_RULES));
  EXPECT_EQ(bpf_map__key_size(s->maps.src_prefixes), sizeof(ramjet_lpm_key));
  EXPECT_EQ(bpf_map__value_size(s->maps.src_prefixes), sizeof(ramjet_rule_set));
  EXPECT_EQ(bpf_map__max_entries(s->maps.stats), uint32_t(RAMJET_STAT__COUNT));
  EXPECT_EQ(bpf_map__value_size(s->maps.rule_filters), sizeof(ramjet_rule_set));
  EXPECT_EQ(bpf_map__max_entries(s->maps.rule_filters), uint32_t(RAMJET_RULE_FILTERS));
  EXPECT_EQ(bpf_map__value_size(s->maps.fallback_counts), sizeof(ramjet_fallback_count));
  EXPECT_EQ(bpf_map__value_size(s->maps.rule_health), sizeof(ramjet_rule_health));
  EXPECT_EQ(bpf_map__max_entries(s->maps.engine_state), uint32_t(RAMJET_MAX_ENDPOINTS));
  datapath__destroy(s);
}

}  // namespace
}  // namespace ramjet::test
