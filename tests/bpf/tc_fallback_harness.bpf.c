// SPDX-License-Identifier: GPL-2.0 OR Apache-2.0
/*
 * Test harness for the TC escalation decision (bpf/lib/tc.h, fallback.h): the
 * datapath's own XDP program and maps, plus a TC program that acts as TC ingress
 * does on a packet XDP marked ESCALATE. A BPF_PROG_TEST_RUN skb cannot carry XDP
 * metadata, so the verdict and endpoint come from here instead of the packet.
 * Built with the skeleton name `datapath` (into tests/bpf/build/harness/) so the
 * XdpClassify fixture drives it unchanged (it has the fixture's tc_classify too).
 */
// clang-format off: vmlinux.h must come first (it provides the kernel types).
#include "vmlinux.h"
// clang-format on

#include "classify.h"
#include "maps.h"
#include "tc.h"

char LICENSE[] SEC("license") = "Dual BSD/GPL";

const volatile __u32 harness_endpoint_id = 1;

SEC("xdp")
int xdp_classify(struct xdp_md* ctx) {
  return ramjet_xdp_classify(ctx);
}

SEC("tc")
int tc_escalated(struct __sk_buff* skb) {
  return ramjet_tc_act(skb, RAMJET_ACTION_ESCALATE, harness_endpoint_id);
}

/* The tc hook's program, so the fixture's run_tc() drives this object too. */
SEC("tc")
int tc_classify(struct __sk_buff* skb) {
  return ramjet_tc_classify(skb);
}
