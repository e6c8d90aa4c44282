// SPDX-License-Identifier: GPL-2.0 OR Apache-2.0
/*
 * The ramjet datapath: one object, so every program shares one set of maps.
 * Per interface, the fast path runs in one of two hooks (datapath.fastpath_hook):
 *   xdp:  xdp_classify  XDP: classification and forwarding (bpf/lib/classify.h)
 *         tc_ingress    tcx ingress: escalation delivery, redirect_neigh (bpf/lib/tc.h)
 *   tc:   tc_classify   tcx ingress: the same classification, forwarding the skb
 *                       (bpf/lib/tc.h), escalation delivery
 * and on every interface
 *         tc_egress     tcx egress: flows of local connections (bpf/lib/tc.h)
 */
// clang-format off: vmlinux.h must come first (it provides the kernel types).
#include "vmlinux.h"
// clang-format on

#include "classify.h"
#include "maps.h"
#include "tc.h"

char LICENSE[] SEC("license") = "Dual BSD/GPL";

SEC("xdp")
int xdp_classify(struct xdp_md* ctx) {
  return ramjet_xdp_classify(ctx);
}

SEC("tc")
int tc_ingress(struct __sk_buff* skb) {
  return ramjet_tc_ingress(skb);
}

SEC("tc")
int tc_classify(struct __sk_buff* skb) {
  return ramjet_tc_classify(skb);
}

SEC("tc")
int tc_egress(struct __sk_buff* skb) {
  return ramjet_tc_egress(skb);
}
