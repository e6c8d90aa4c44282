// SPDX-License-Identifier: GPL-2.0 OR Apache-2.0
/*
 * The TUN hand-off: tcx ingress on an ip endpoint's TUN device (ramjet/abi/handoff.h).
 *
 * The only packets that enter the host through the device are the ones ramjetd writes
 * into it: packets of flows an IpFlowHook decapsulated. A policy rule makes every
 * destination local for the packets this program marks (docs/ip_onramp.md), so the
 * host's TCP or UDP stack terminates them; this program picks the socket. A TCP packet
 * of a connection the host already has is left to the kernel's own lookup. Any other
 * packet of a decapsulated flow goes to the socket of the endpoint its hook named
 * (bpf_sk_assign), which accepts it with the original addresses, as an escalated
 * flow's. UDP has no established socket to leave later datagrams to: every datagram
 * goes to the udp endpoint's socket. The kernel's own lookup would find the session's
 * reply socket instead (bound to the original destination, connected to the client,
 * so the better match), as TC escalation avoids for the same reason. The device has
 * no link-layer header: skb->data is the IP header.
 */
// clang-format off: vmlinux.h must come first (it provides the kernel types).
#include "vmlinux.h"
// clang-format on

#include <bpf/bpf_endian.h>
#include <bpf/bpf_helpers.h>

#include "ramjet/abi/handoff.h"
#include "ramjet/abi/meta.h"

#define ETH_P_IP 0x0800
#define ETH_P_IPV6 0x86DD
#define TC_ACT_OK 0
#define TC_ACT_SHOT 2
/* IPv4 header, IPv6 header, and the ports: what is read, pulled in when not linear. */
#define HANDOFF_HEADER_BYTES 64

char LICENSE[] SEC("license") = "Dual BSD/GPL";

/* Set on the packets handed on: the ip endpoints' bypass marks (set before load). The
 * hand-off rule matches the device *and* this mark: a rule on the device alone would
 * also match the kernel's reverse-path check of packets it forwards into the device
 * (that lookup runs as if from the device), and make their sources "local". */
const volatile __u32 handoff_mark = 0;

struct {
  __uint(type, BPF_MAP_TYPE_HASH);
  __uint(max_entries, RAMJET_HANDOFF_MAX_FLOWS);
  __type(key, struct ramjet_handoff_key);
  __type(value, struct ramjet_handoff_target);
} handoff_flows SEC(".maps");

struct {
  __uint(type, BPF_MAP_TYPE_SOCKMAP);
  __uint(max_entries, RAMJET_MAX_ENDPOINTS * 2);
  __type(key, __u32);
  __type(value, __u64);
} handoff_sockets SEC(".maps");

struct {
  __uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
  __uint(max_entries, RAMJET_HANDOFF_STAT_COUNT);
  __type(key, __u32);
  __type(value, __u64);
} handoff_stats SEC(".maps");

static __always_inline int counted(__u32 stat, int action) {
  __u64* n = bpf_map_lookup_elem(&handoff_stats, &stat);
  if (n) *n += 1;
  return action;
}

#define HANDOFF_ICMP_ERROR (-2)

/* Fills `key` and `tuple` from the packet; returns a RAMJET_HANDOFF_* reason to drop
 * for, -1 when the packet is a TCP or UDP packet the program can hand off, or
 * HANDOFF_ICMP_ERROR for an ICMP error to deliver locally. */
static __always_inline int parse(void* data, void* end, __u32 protocol,
                                 struct ramjet_handoff_key* key, struct bpf_sock_tuple* tuple,
                                 __u32* tuple_len, int* syn) {
  __u16* ports;
  if (protocol == bpf_htons(ETH_P_IP)) {
    struct iphdr* ip = data;
    if ((void*)(ip + 1) > end || ip->version != 4 || ip->ihl < 5) return RAMJET_HANDOFF_MALFORMED;
    if (ip->frag_off & bpf_htons(0x3FFF)) return RAMJET_HANDOFF_UNSUPPORTED; /* MF or offset */
    ports = data + ip->ihl * 4;
    if ((void*)(ports + 2) > end) return RAMJET_HANDOFF_MALFORMED;
    key->family = RAMJET_FAMILY_IPV4;
    key->proto = ip->protocol;
    key->saddr[0] = ip->saddr;
    key->daddr[0] = ip->daddr;
    tuple->ipv4.saddr = ip->saddr;
    tuple->ipv4.daddr = ip->daddr;
    tuple->ipv4.sport = ports[0];
    tuple->ipv4.dport = ports[1];
    *tuple_len = sizeof(tuple->ipv4);
  } else if (protocol == bpf_htons(ETH_P_IPV6)) {
    struct ipv6hdr* ip6 = data;
    if ((void*)(ip6 + 1) > end || ip6->version != 6) return RAMJET_HANDOFF_MALFORMED;
    ports = (void*)(ip6 + 1);
    if ((void*)(ports + 2) > end) return RAMJET_HANDOFF_MALFORMED;
    key->family = RAMJET_FAMILY_IPV6;
    key->proto = ip6->nexthdr; /* extension headers: not TCP or UDP, unsupported below */
    __builtin_memcpy(key->saddr, &ip6->saddr, 16);
    __builtin_memcpy(key->daddr, &ip6->daddr, 16);
    __builtin_memcpy(tuple->ipv6.saddr, &ip6->saddr, 16);
    __builtin_memcpy(tuple->ipv6.daddr, &ip6->daddr, 16);
    tuple->ipv6.sport = ports[0];
    tuple->ipv6.dport = ports[1];
    *tuple_len = sizeof(tuple->ipv6);
  } else {
    return RAMJET_HANDOFF_MALFORMED;
  }
  /* An ICMP error the engine matched to a decapsulated UDP session (it writes back no
   * other ICMP): the host delivers it locally, by the datagram it quotes, to the
   * session's reply socket, as for an escalated flow. */
  __u8 icmp_type = *(__u8*)ports;
  if (key->family == RAMJET_FAMILY_IPV4 && key->proto == IPPROTO_ICMP &&
      (icmp_type == 3 || icmp_type == 11 || icmp_type == 12))
    return HANDOFF_ICMP_ERROR;
  if (key->family == RAMJET_FAMILY_IPV6 && key->proto == 58 /* ICMPv6 */ && icmp_type >= 1 &&
      icmp_type <= 4)
    return HANDOFF_ICMP_ERROR;
  if (key->proto != IPPROTO_TCP && key->proto != IPPROTO_UDP) return RAMJET_HANDOFF_UNSUPPORTED;
  key->sport = ports[0];
  key->dport = ports[1];
  if (key->proto == IPPROTO_TCP) {
    __u8* flags = (__u8*)ports + 13; /* TCP flags: CWR ECE URG ACK PSH RST SYN FIN */
    if ((void*)(flags + 1) > end) return RAMJET_HANDOFF_MALFORMED;
    *syn = (*flags & 0x12) == 0x02; /* SYN without ACK: a connection opening */
  }
  return -1;
}

SEC("tc")
int tun_handoff(struct __sk_buff* skb) {
  __u32 want = skb->len < HANDOFF_HEADER_BYTES ? skb->len : HANDOFF_HEADER_BYTES;
  if ((__u32)(skb->data_end - skb->data) < want) bpf_skb_pull_data(skb, want);

  struct ramjet_handoff_key key;
  struct bpf_sock_tuple tuple;
  __u32 tuple_len = 0;
  __builtin_memset(&key, 0, sizeof(key));
  __builtin_memset(&tuple, 0, sizeof(tuple));
  /* Read after the pull (which moves them), straight from the context: the barrier
   * keeps the compiler from reusing the address arithmetic of the reads above, which
   * the verifier refuses (a modified context pointer). */
  asm volatile("" : "+r"(skb));
  void* data = (void*)(long)skb->data;
  void* end = (void*)(long)skb->data_end;
  int syn = 0;
  int why = parse(data, end, skb->protocol, &key, &tuple, &tuple_len, &syn);
  if (why >= 0) return counted(why, TC_ACT_SHOT);
  if (why == HANDOFF_ICMP_ERROR) {
    skb->mark = handoff_mark;
    return counted(RAMJET_HANDOFF_OWN_SOCKET, TC_ACT_OK);
  }

  struct bpf_sock* sk;
  if (key.proto == IPPROTO_TCP) {
    sk = bpf_skc_lookup_tcp(skb, &tuple, tuple_len, BPF_F_CURRENT_NETNS, 0);
    if (sk) {
      /* A listener, or a new connection's SYN that meets the TIME_WAIT of an earlier
       * one on the same ports (the kernel would hand that SYN to whatever listens on the
       * original destination, not to the endpoint the hook chose): the hand-off. */
      int listener = sk->state == BPF_TCP_LISTEN || (syn && sk->state == BPF_TCP_TIME_WAIT);
      bpf_sk_release(sk);
      /* An established (or half-open) connection: the kernel finds it itself. */
      if (!listener) {
        skb->mark = handoff_mark;
        return counted(RAMJET_HANDOFF_OWN_SOCKET, TC_ACT_OK);
      }
    }
  }
  struct ramjet_handoff_target* target = bpf_map_lookup_elem(&handoff_flows, &key);
  if (!target) return counted(RAMJET_HANDOFF_NO_FLOW, TC_ACT_SHOT);
  __u32 index = target->slot;
  sk = bpf_map_lookup_elem(&handoff_sockets, &index);
  if (!sk) return counted(RAMJET_HANDOFF_NO_SOCKET, TC_ACT_SHOT);
  long err = bpf_sk_assign(skb, sk, 0);
  bpf_sk_release(sk);
  if (err) return counted(RAMJET_HANDOFF_ASSIGN_FAILED, TC_ACT_SHOT);
  skb->mark = handoff_mark;
  return counted(RAMJET_HANDOFF_ASSIGNED, TC_ACT_OK);
}
