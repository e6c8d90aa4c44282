/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The one list of datapath outcomes. Each entry is a per-CPU counter (index in
 * the `stats` map) and, for DROP/PASS entries, the reason a packet got its
 * verdict. BPF, metrics, ramjetctl and tests all use this list; add entries only
 * at the end of a class block's... anywhere: the numeric values are internal to
 * one build (userspace and BPF are built together), names are the stable API.
 *
 * X(name, class): class is one of DROP (XDP_DROP), PASS (XDP_PASS to the stack),
 * ESCALATE (XDP_PASS, flow marked for the engine), FASTPATH (forwarded in
 * kernel), EVENT (a counter that is not a packet verdict).
 *
 * Each packet XDP sees counts exactly one non-EVENT stat. TC_* entries are a
 * second stage: TC ingress acts on packets XDP passed up with a verdict in the
 * XDP metadata (ramjet/abi/meta.h), so such a packet counts once in each stage.
 */
#ifndef RAMJET_ABI_STATS_H
#define RAMJET_ABI_STATS_H

#include "ramjet/abi/common.h"

#define RAMJET_STATS(X)                                                                 \
  X(NONE, EVENT) /* parse ok / no reason; never counted */                              \
  /* malformed input */                                                                 \
  X(TRUNCATED_ETH, DROP)      /* frame shorter than an Ethernet header */               \
  X(TRUNCATED_VLAN, DROP)     /* 802.1Q/802.1ad tag cut off */                          \
  X(VLAN_TOO_DEEP, DROP)      /* more than RAMJET_MAX_VLAN_TAGS tags */                 \
  X(TRUNCATED_IP, DROP)       /* IPv4/IPv6 header or IPv4 options cut off */            \
  X(BAD_IP_HEADER, DROP)      /* bad version, IHL < 5, total length inconsistent */     \
  X(TRUNCATED_IPV6_EXT, DROP) /* IPv6 extension header cut off */                       \
  X(IPV6_EXT_TOO_DEEP, DROP)  /* more than RAMJET_MAX_IPV6_EXT extension headers */     \
  X(TRUNCATED_L4, DROP)       /* TCP/UDP/ICMP header cut off */                         \
  X(BAD_L4_HEADER, DROP)      /* TCP data offset < 5 */                                 \
  X(FRAGMENT, DROP)           /* IP fragment (cannot classify by port) */               \
  /* policy */                                                                          \
  X(DENYLIST, DROP)     /* source in the denylist trie */                               \
  X(RULE_DROP, DROP)    /* matched a rule with action DROP */                           \
  X(RATE_LIMITED, DROP) /* source exceeded its rule's token bucket */                   \
  X(DEFAULT_DROP, DROP) /* no rule matched and default_action is DROP */                \
  /* handed to the kernel stack */                                                      \
  X(PASS_NOT_IP, PASS)   /* ARP, LLDP, ... */                                           \
  X(PASS_FRAGMENT, PASS) /* fragment, pass_fragments knob set */                        \
  X(PASS_RULE, PASS)     /* matched a rule with action PASS or RATELIMIT */             \
  X(PASS_DEFAULT, PASS)  /* no rule matched, default_action is PASS */                  \
  X(ESCALATE, ESCALATE)  /* flow marked ESCALATE, delivered by TC/sk_lookup */          \
  X(ESCALATE_NO_META, DROP) /* escalated, but no room for the XDP metadata TC needs */  \
  X(FALLBACK_PASS, PASS)    /* later packet of a flow whose fallback is pass */         \
  X(FALLBACK_DROP, DROP)    /* later packet of a flow whose fallback is drop */         \
  /* fast path outcomes: forwarded, or passed to the stack because it must act */       \
  X(FASTPATH_REDIRECT, FASTPATH) /* fib hit: TTL-1, MACs rewritten, redirected */       \
  X(FIB_TTL_EXPIRED, PASS)       /* TTL/hop limit <= 1: stack sends ICMP */             \
  X(FIB_NO_NEIGH, PASS)          /* route ok, neighbour unresolved: stack resolves */   \
  X(FIB_FRAG_NEEDED, PASS)       /* egress MTU too small: stack sends ICMP */           \
  X(FIB_FWD_DISABLED, PASS)      /* forwarding disabled on the ingress device */        \
  X(FIB_NO_ROUTE, PASS)          /* blackhole/unreachable/prohibit/not forwarded */     \
  X(FIB_OTHER, PASS)             /* any other fib lookup failure */                     \
  X(FASTPATH_VLAN, PASS)         /* tagged frame: in-kernel forwarding not supported */ \
  X(PASS_LOCAL, PASS)            /* reply of a connection this host opened (TC egress) */ \
  X(PASS_HOST_SCOPE, PASS)       /* multicast, broadcast or link-local destination */     \
  /* second stage, TC ingress: packets XDP passed up with a verdict attached */          \
  X(TC_ESCALATE_ASSIGNED, EVENT)    /* escalated packet assigned to the engine's socket */ \
  X(TC_ESCALATE_UNSUPPORTED, DROP)  /* escalated flow neither TCP nor UDP: no on-ramp */ \
  X(TC_FALLBACK_PASS, PASS)         /* engine unavailable, fallback pass: stack forwards */ \
  X(TC_FALLBACK_REJECT, DROP)       /* engine unavailable, fallback reject: RST sent back */ \
  X(TC_FALLBACK_DROP, DROP)         /* engine unavailable, fallback drop */                \
  X(TC_REJECT_FAILED, DROP)         /* fallback reject: the RST could not be built */      \
  X(TC_FASTPATH_NEIGH, FASTPATH)    /* XDP lacked the neighbour: TC redirect_neigh */      \
  X(TC_FORWARD_REWRITE_FAILED, DROP) /* redirect_neigh: the TTL rewrite failed */          \
  X(TC_LOCAL_FLOW, EVENT)           /* TC egress created a flow for a local connection */ \
  X(TC_ESCALATE_ICMP_ERROR, PASS)   /* ICMP error about an escalated UDP flow: marked local */ \
  /* bookkeeping */                                                                     \
  X(FLOW_NEW, EVENT)           /* flow entry created */                                 \
  X(FLOW_HIT, EVENT)           /* packet matched a cached flow verdict */               \
  X(FLOW_UPDATE_FAILED, EVENT) /* bpf_map_update_elem on flows failed */                \
  X(CLASS_OVERRIDE, EVENT)     /* new flow's verdict came from a hook-issued class */    \
  X(EVENT_LOST, EVENT)         /* ring buffer full, event not emitted */

enum ramjet_stat_class {
  RAMJET_STAT_CLASS_EVENT = 0,
  RAMJET_STAT_CLASS_DROP = 1,
  RAMJET_STAT_CLASS_PASS = 2,
  RAMJET_STAT_CLASS_ESCALATE = 3,
  RAMJET_STAT_CLASS_FASTPATH = 4,
};

enum ramjet_stat {
#define RAMJET_X_ENUM(name, cls) RAMJET_STAT_##name,
  RAMJET_STATS(RAMJET_X_ENUM)
#undef RAMJET_X_ENUM
      RAMJET_STAT__COUNT
};

/* Value of one slot in the per-CPU `stats` array. */
struct ramjet_stat_value {
  __u64 packets;
  __u64 bytes;
};
RAMJET_ABI_SIZE(struct ramjet_stat_value, 16);

#ifdef __cplusplus
/* Names as declared (e.g. "RULE_DROP"); metrics lowercase them. */
inline constexpr const char* ramjet_stat_names[RAMJET_STAT__COUNT] = {
#define RAMJET_X_NAME(name, cls) #name,
    RAMJET_STATS(RAMJET_X_NAME)
#undef RAMJET_X_NAME
};
inline constexpr enum ramjet_stat_class ramjet_stat_classes[RAMJET_STAT__COUNT] = {
#define RAMJET_X_CLASS(name, cls) RAMJET_STAT_CLASS_##cls,
    RAMJET_STATS(RAMJET_X_CLASS)
#undef RAMJET_X_CLASS
};
#endif

#endif /* RAMJET_ABI_STATS_H */
