// SPDX-License-Identifier: GPL-2.0 OR Apache-2.0
/*
 * The ramjet datapath: one object, so every program shares one set of maps.
 *   xdp_classify  XDP on each datapath interface (bpf/lib/classify.h)
 *   tc_ingress    tcx ingress: escalation delivery, redirect_neigh (bpf/lib/tc.h)
 *   tc_egress     tcx egress: flows of local connections (bpf/lib/tc.h)
 */
// clang-format off: vmlinux.h must come first (it provides the kernel types).
#include "vmlinux.h"
// clang-format on

#include "maps.h"

#include "classify.h"
#include "tc.h"

char LICENSE[] SEC("license") = "Dual BSD/GPL";

SEC("xdp")
int xdp_classify(struct xdp_md* ctx) { return ramjet_xdp_classify(ctx); }

SEC("tc")
int tc_ingress(struct __sk_buff* skb) { return ramjet_tc_ingress(skb); }

SEC("tc")
int tc_egress(struct __sk_buff* skb) { return ramjet_tc_egress(skb); }
