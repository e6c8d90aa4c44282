/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Common definitions for the BPF header library. vmlinux.h carries no #defines,
 * so the protocol constants the datapath needs are spelled out here.
 * Include order in a program: vmlinux.h, then ramjet headers.
 */
#ifndef RAMJET_LIB_DEFS_H
#define RAMJET_LIB_DEFS_H

#ifndef __VMLINUX_H__
#error "include vmlinux.h before bpf/lib headers"
#endif

#include <bpf/bpf_endian.h>
#include <bpf/bpf_helpers.h>

#include "ramjet/abi/ramjet.h"

#ifndef likely
#define likely(x) __builtin_expect(!!(x), 1)
#endif
#ifndef unlikely
#define unlikely(x) __builtin_expect(!!(x), 0)
#endif

#define ETH_ALEN 6
#define ETH_P_IP 0x0800
#define ETH_P_IPV6 0x86DD
#define ETH_P_8021Q 0x8100
#define ETH_P_8021AD 0x88A8

#define AF_INET 2
#define AF_INET6 10

#define IP_MF 0x2000
#define IP_OFFSET 0x1FFF

/* IPv6 next-header values (include/net/ipv6.h). */
#define NEXTHDR_HOP 0
#define NEXTHDR_ROUTING 43
#define NEXTHDR_FRAGMENT 44
#define NEXTHDR_AUTH 51
#define NEXTHDR_ICMP 58
#define NEXTHDR_NONE 59
#define NEXTHDR_DEST 60

#define IP6_MF 0x0001
#define IP6_OFFSET 0xFFF8

#define ICMP_ECHOREPLY 0
#define ICMP_ECHO 8
#define ICMPV6_ECHO_REQUEST 128
#define ICMPV6_ECHO_REPLY 129

/* TC program verdicts (include/uapi/linux/pkt_cls.h). */
#define TC_ACT_OK 0
#define TC_ACT_SHOT 2

/* Parser limits: a packet beyond them is dropped with a named reason. */
#define RAMJET_MAX_VLAN_TAGS 2
#define RAMJET_MAX_IPV6_EXT 6

#endif /* RAMJET_LIB_DEFS_H */
