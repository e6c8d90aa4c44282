/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Packet parser: Ethernet, up to RAMJET_MAX_VLAN_TAGS 802.1Q/802.1ad tags,
 * IPv4 (options, fragments), IPv6 with up to RAMJET_MAX_IPV6_EXT extension
 * headers, then TCP/UDP/ICMP/ICMPv6.
 *
 * Every function returns RAMJET_STAT_NONE when it parsed what it should, or the
 * drop reason that describes what was wrong. Bounds are checked right before
 * every access, against data_end re-read from the context.
 */
#ifndef RAMJET_LIB_PARSE_H
#define RAMJET_LIB_PARSE_H

#include "defs.h"

/*
 * What the parser learned. Scalars only (offsets, not pointers): a program can
 * fill it in a global (separately verified) function and pass it around, which
 * keeps the verifier from re-walking every parse path through the rest of the
 * program. Code that writes the packet re-derives pointers from ctx.
 */
struct ramjet_pkt {
  /* Addresses first and 8-byte aligned, so the flow key compares them as two
   * 64-bit words (stack accesses must be aligned). */
  union {
    __u32 saddr[RAMJET_ADDR_WORDS]; /* network order; IPv4 in [0], rest zero */
    __u64 saddr64[RAMJET_ADDR_WORDS / 2];
  };
  union {
    __u32 daddr[RAMJET_ADDR_WORDS];
    __u64 daddr64[RAMJET_ADDR_WORDS / 2];
  };
  __u32 len;       /* frame length */
  __u16 l3_off;    /* offset of the IP header */
  __u16 l4_off;    /* offset after the IP header chain; valid iff has_l4 */
  __u16 l3_proto;  /* ETH_P_* in host order */
  __u16 l3_len;    /* IP total length (header + payload), host order */
  __be32 flowinfo; /* IPv6 traffic class + flow label (network order) */
  __be16 sport;    /* TCP/UDP ports; ICMP echo id in both; else 0 */
  __be16 dport;
  __u8 family; /* enum ramjet_family, NONE if not IP */
  __u8 proto;  /* final L4 protocol */
  __u8 vlan_depth;
  __u8 fragment; /* 1: IPv4 MF/offset or IPv6 fragment header with MF/offset */
  __u8 has_l4;   /* 1: L4 header parsed and bounds-checked */
  __u8 has_ports;
  __u8 tcp_flags;
  __u8 ttl; /* TTL / hop limit */
  __u8 tos; /* IPv4 TOS */
  __u8 pad[3];
} __attribute__((aligned(8)));
_Static_assert(sizeof(struct ramjet_pkt) == 64, "ramjet_pkt: keep it one cache line");

/*
 * Parse-time view of the frame: the bytes readable in place (data .. data_end)
 * and the frame's whole length. They differ for an skb whose payload sits in
 * page fragments (a GSO skb from a local socket, as every veth carries): the
 * headers are in place, the IP total length counts the whole frame.
 */
struct ramjet_cursor {
  void* data;
  void* data_end;
  __u32 frame_len;
};

static __always_inline void ramjet_pkt_init(struct ramjet_pkt* pkt, struct ramjet_cursor* cur,
                                            void* data, void* data_end, __u32 frame_len) {
  __builtin_memset(pkt, 0, sizeof(*pkt));
  cur->data = data;
  cur->data_end = data_end;
  cur->frame_len = frame_len;
  pkt->len = frame_len;
}

/* 1 when `len` bytes from `at` (a pointer into the frame) lie within the frame. */
static __always_inline int ramjet_in_frame(const struct ramjet_cursor* cur, void* at, __u32 len) {
  return (__u32)(at - cur->data) + len <= cur->frame_len;
}

/* Ethernet + VLAN tags; returns the network header in *l3. */
static __always_inline enum ramjet_stat ramjet_parse_eth(const struct ramjet_cursor* cur,
                                                         struct ramjet_pkt* pkt, void** l3) {
  struct ethhdr* eth = cur->data;
  if ((void*)(eth + 1) > cur->data_end) return RAMJET_STAT_TRUNCATED_ETH;

  __u16 proto = bpf_ntohs(eth->h_proto);
  void* at = eth + 1;
#pragma unroll
  for (int i = 0; i < RAMJET_MAX_VLAN_TAGS; i++) {
    if (proto != ETH_P_8021Q && proto != ETH_P_8021AD) break;
    struct vlan_hdr* vlan = at;
    if ((void*)(vlan + 1) > cur->data_end) return RAMJET_STAT_TRUNCATED_VLAN;
    proto = bpf_ntohs(vlan->h_vlan_encapsulated_proto);
    at = vlan + 1;
    pkt->vlan_depth++;
  }
  if (proto == ETH_P_8021Q || proto == ETH_P_8021AD) return RAMJET_STAT_VLAN_TOO_DEEP;

  pkt->l3_proto = proto;
  pkt->l3_off = (__u16)(at - cur->data);
  *l3 = at;
  return RAMJET_STAT_NONE;
}

static __always_inline enum ramjet_stat ramjet_parse_ipv4(const struct ramjet_cursor* cur,
                                                          struct ramjet_pkt* pkt, void* l3,
                                                          void** l4) {
  struct iphdr* ip = l3;
  if ((void*)(ip + 1) > cur->data_end) return RAMJET_STAT_TRUNCATED_IP;

  __u8 ver_ihl = *(__u8*)ip;
  __u32 hdr_len = (ver_ihl & 0x0f) * 4;
  if ((ver_ihl >> 4) != 4 || hdr_len < sizeof(*ip)) return RAMJET_STAT_BAD_IP_HEADER;
  /* Options: the whole header must be present before L4 is looked at. */
  if ((void*)ip + hdr_len > cur->data_end) return RAMJET_STAT_TRUNCATED_IP;

  __u16 tot_len = bpf_ntohs(ip->tot_len);
  if (tot_len < hdr_len) return RAMJET_STAT_BAD_IP_HEADER;
  if (!ramjet_in_frame(cur, ip, tot_len)) return RAMJET_STAT_TRUNCATED_IP;

  pkt->family = RAMJET_FAMILY_IPV4;
  pkt->proto = ip->protocol;
  pkt->ttl = ip->ttl;
  pkt->tos = ip->tos;
  pkt->l3_len = tot_len;
  pkt->saddr[0] = ip->saddr;
  pkt->daddr[0] = ip->daddr;
  pkt->fragment = (ip->frag_off & bpf_htons(IP_MF | IP_OFFSET)) != 0;
  *l4 = (void*)ip + hdr_len;
  return RAMJET_STAT_NONE;
}

/* Walks the extension header chain; leaves pkt->proto at the upper layer. */
static __always_inline enum ramjet_stat ramjet_parse_ipv6(const struct ramjet_cursor* cur,
                                                          struct ramjet_pkt* pkt, void* l3,
                                                          void** l4) {
  struct ipv6hdr* ip6 = l3;
  if ((void*)(ip6 + 1) > cur->data_end) return RAMJET_STAT_TRUNCATED_IP;
  if ((*(__u8*)ip6 >> 4) != 6) return RAMJET_STAT_BAD_IP_HEADER;

  __u32 tot_len = sizeof(*ip6) + bpf_ntohs(ip6->payload_len);
  if (!ramjet_in_frame(cur, ip6, tot_len)) return RAMJET_STAT_TRUNCATED_IP;

  pkt->family = RAMJET_FAMILY_IPV6;
  pkt->ttl = ip6->hop_limit;
  pkt->l3_len = (__u16)tot_len; /* jumbograms (payload_len 0) are not forwarded */
  pkt->flowinfo = *(__be32*)ip6 & bpf_htonl(0x0FFFFFFF);
  __builtin_memcpy(pkt->saddr, &ip6->saddr, 16);
  __builtin_memcpy(pkt->daddr, &ip6->daddr, 16);

  __u8 nexthdr = ip6->nexthdr;
  void* at = ip6 + 1;
#pragma unroll
  for (int i = 0; i < RAMJET_MAX_IPV6_EXT; i++) {
    switch (nexthdr) {
      case NEXTHDR_HOP:
      case NEXTHDR_ROUTING:
      case NEXTHDR_DEST: {
        struct ipv6_opt_hdr* opt = at;
        if ((void*)(opt + 1) > cur->data_end) return RAMJET_STAT_TRUNCATED_IPV6_EXT;
        nexthdr = opt->nexthdr;
        at += ((__u32)opt->hdrlen + 1) * 8;
        break;
      }
      case NEXTHDR_AUTH: {
        struct ipv6_opt_hdr* opt = at;
        if ((void*)(opt + 1) > cur->data_end) return RAMJET_STAT_TRUNCATED_IPV6_EXT;
        nexthdr = opt->nexthdr;
        at += ((__u32)opt->hdrlen + 2) * 4;
        break;
      }
      case NEXTHDR_FRAGMENT: {
        struct frag_hdr* frag = at;
        if ((void*)(frag + 1) > cur->data_end) return RAMJET_STAT_TRUNCATED_IPV6_EXT;
        nexthdr = frag->nexthdr;
        at = frag + 1;
        /* A real fragment ends the walk: what follows a non-first fragment's
         * header is payload. An atomic fragment (offset 0, no MF; RFC 8200
         * 4.5) is a whole packet and parsing continues. */
        if (frag->frag_off & bpf_htons(IP6_MF | IP6_OFFSET)) {
          pkt->fragment = 1;
          goto upper_layer;
        }
        break;
      }
      default:
        goto upper_layer;
    }
    /* The header just skipped must fit; the next one is checked at its read. */
    if (at > cur->data_end) return RAMJET_STAT_TRUNCATED_IPV6_EXT;
  }
  /* Chain not finished after the limit: refuse to guess what follows. */
  if (nexthdr == NEXTHDR_HOP || nexthdr == NEXTHDR_ROUTING || nexthdr == NEXTHDR_DEST ||
      nexthdr == NEXTHDR_AUTH || nexthdr == NEXTHDR_FRAGMENT)
    return RAMJET_STAT_IPV6_EXT_TOO_DEEP;

upper_layer:
  pkt->proto = nexthdr;
  *l4 = at;
  return RAMJET_STAT_NONE;
}

/* TCP/UDP/ICMP/ICMPv6 headers; other protocols are classified without ports. */
static __always_inline enum ramjet_stat ramjet_parse_l4(const struct ramjet_cursor* cur,
                                                        struct ramjet_pkt* pkt, void* l4) {
  switch (pkt->proto) {
    case IPPROTO_TCP: {
      struct tcphdr* tcp = l4;
      if ((void*)(tcp + 1) > cur->data_end) return RAMJET_STAT_TRUNCATED_L4;
      __u8 doff = ((__u8*)tcp)[12] >> 4;
      if (doff < 5) return RAMJET_STAT_BAD_L4_HEADER;
      pkt->sport = tcp->source;
      pkt->dport = tcp->dest;
      pkt->tcp_flags = ((__u8*)tcp)[13];
      pkt->has_ports = 1;
      break;
    }
    case IPPROTO_UDP: {
      struct udphdr* udp = l4;
      if ((void*)(udp + 1) > cur->data_end) return RAMJET_STAT_TRUNCATED_L4;
      pkt->sport = udp->source;
      pkt->dport = udp->dest;
      pkt->has_ports = 1;
      break;
    }
    case IPPROTO_ICMP: {
      struct icmphdr* icmp = l4;
      if ((void*)(icmp + 1) > cur->data_end) return RAMJET_STAT_TRUNCATED_L4;
      if (icmp->type == ICMP_ECHO || icmp->type == ICMP_ECHOREPLY)
        pkt->sport = pkt->dport = icmp->un.echo.id;
      break;
    }
    case NEXTHDR_ICMP: {
      struct icmp6hdr* icmp6 = l4;
      if ((void*)(icmp6 + 1) > cur->data_end) return RAMJET_STAT_TRUNCATED_L4;
      if (icmp6->icmp6_type == ICMPV6_ECHO_REQUEST || icmp6->icmp6_type == ICMPV6_ECHO_REPLY)
        pkt->sport = pkt->dport = icmp6->icmp6_dataun.u_echo.identifier;
      break;
    }
    default:
      break;
  }
  pkt->l4_off = (__u16)(l4 - cur->data);
  pkt->has_l4 = 1;
  return RAMJET_STAT_NONE;
}

/*
 * Full parse. On RAMJET_STAT_NONE, pkt->family tells whether this is IP at all
 * (RAMJET_FAMILY_NONE: not IP, e.g. ARP). Fragments stop before L4: a non-first
 * fragment carries no L4 header, and the first alone must not set a verdict the
 * others cannot reproduce; the caller decides what to do with pkt->fragment.
 */
static __always_inline enum ramjet_stat ramjet_parse_frame(void* data, void* data_end,
                                                           __u32 frame_len,
                                                           struct ramjet_pkt* pkt) {
  struct ramjet_cursor cur;
  void* l3 = NULL;
  void* l4 = NULL;
  ramjet_pkt_init(pkt, &cur, data, data_end, frame_len);

  enum ramjet_stat rc = ramjet_parse_eth(&cur, pkt, &l3);
  if (rc != RAMJET_STAT_NONE) return rc;

  if (pkt->l3_proto == ETH_P_IP)
    rc = ramjet_parse_ipv4(&cur, pkt, l3, &l4);
  else if (pkt->l3_proto == ETH_P_IPV6)
    rc = ramjet_parse_ipv6(&cur, pkt, l3, &l4);
  else
    return RAMJET_STAT_NONE;
  if (rc != RAMJET_STAT_NONE || pkt->fragment) return rc;

  return ramjet_parse_l4(&cur, pkt, l4);
}

/*
 * The hook's view of its packet (the context adaptor: everything above works on
 * it, so XDP and TC share one parser):
 *   XDP  the frame is ctx->data .. ctx->data_end, all of it in place;
 *   TC   skb->data .. skb->data_end is the linear part, which holds the headers
 *        (tc_pull_headers makes sure), and skb->len is the whole frame.
 */
#define RAMJET_XDP_FRAME(ctx) \
  (void*)(long)(ctx)->data, (void*)(long)(ctx)->data_end, (__u32)((ctx)->data_end - (ctx)->data)
#define RAMJET_SKB_FRAME(skb) (void*)(long)(skb)->data, (void*)(long)(skb)->data_end, (skb)->len

/*
 * The common case, inline: untagged Ethernet, then IPv4 without options that is
 * not a fragment, or IPv6 without extension headers, then TCP, UDP, ICMP or
 * ICMPv6. Returns 1 with *pkt filled exactly as ramjet_parse_frame() would
 * fill it, or 0 for anything else (*pkt is then garbage: call ramjet_parse_frame()).
 *
 * Why both: ramjet_parse_frame() covers VLAN stacks, IPv4 options and IPv6 extension
 * chains, and the programs call it through a global function so the verifier
 * checks its many paths once (inlined, the verifier walks the rest of the
 * program once per parse path: loads take seconds and some knob combinations
 * fail). This prefix has one path per family and L4 protocol, and being inline
 * it saves the call and the re-reads of what the call left on the stack.
 */
static __always_inline int ramjet_parse_fast(void* data, void* data_end, __u32 frame_len,
                                             struct ramjet_pkt* pkt) {
  struct ethhdr* eth = data;
  if ((void*)(eth + 1) > data_end) return 0;
  void* l4;
  __builtin_memset(pkt, 0, sizeof(*pkt));
  pkt->len = frame_len;
  pkt->l3_off = sizeof(*eth);
  if (eth->h_proto == bpf_htons(ETH_P_IP)) {
    struct iphdr* ip = (void*)(eth + 1);
    if ((void*)(ip + 1) > data_end) return 0;
    if (*(__u8*)ip != 0x45) return 0; /* version 4, no options */
    if (ip->frag_off & bpf_htons(IP_MF | IP_OFFSET)) return 0;
    __u16 tot_len = bpf_ntohs(ip->tot_len);
    if (tot_len < sizeof(*ip) || sizeof(*eth) + tot_len > frame_len) return 0;
    pkt->l3_proto = ETH_P_IP;
    pkt->family = RAMJET_FAMILY_IPV4;
    pkt->proto = ip->protocol;
    pkt->ttl = ip->ttl;
    pkt->tos = ip->tos;
    pkt->l3_len = tot_len;
    /* One 64-bit store per address (the rest is zero): the flow key reads them
     * as 64-bit words, and a load that spans a 32-bit store and the memset's
     * stores cannot be forwarded from the store buffer (a stall per address). */
#if __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
    pkt->saddr64[0] = (__u64)ip->saddr; /* saddr[0]; saddr[1] = 0 */
    pkt->daddr64[0] = (__u64)ip->daddr;
#else
    pkt->saddr64[0] = (__u64)ip->saddr << 32;
    pkt->daddr64[0] = (__u64)ip->daddr << 32;
#endif
    l4 = ip + 1;
  } else if (eth->h_proto == bpf_htons(ETH_P_IPV6)) {
    struct ipv6hdr* ip6 = (void*)(eth + 1);
    if ((void*)(ip6 + 1) > data_end) return 0;
    if ((*(__u8*)ip6 >> 4) != 6) return 0;
    __u32 tot_len = sizeof(*ip6) + bpf_ntohs(ip6->payload_len);
    if (sizeof(*eth) + tot_len > frame_len) return 0;
    pkt->l3_proto = ETH_P_IPV6;
    pkt->family = RAMJET_FAMILY_IPV6;
    pkt->proto = ip6->nexthdr;
    pkt->ttl = ip6->hop_limit;
    pkt->l3_len = (__u16)tot_len;
    pkt->flowinfo = *(__be32*)ip6 & bpf_htonl(0x0FFFFFFF);
    __builtin_memcpy(pkt->saddr, &ip6->saddr, 16);
    __builtin_memcpy(pkt->daddr, &ip6->daddr, 16);
    l4 = ip6 + 1;
  } else {
    return 0;
  }
  switch (pkt->proto) {
    case IPPROTO_TCP: {
      struct tcphdr* tcp = l4;
      if ((void*)(tcp + 1) > data_end) return 0;
      if ((((__u8*)tcp)[12] >> 4) < 5) return 0;
      pkt->sport = tcp->source;
      pkt->dport = tcp->dest;
      pkt->tcp_flags = ((__u8*)tcp)[13];
      pkt->has_ports = 1;
      break;
    }
    case IPPROTO_UDP: {
      struct udphdr* udp = l4;
      if ((void*)(udp + 1) > data_end) return 0;
      pkt->sport = udp->source;
      pkt->dport = udp->dest;
      pkt->has_ports = 1;
      break;
    }
    case IPPROTO_ICMP: {
      struct icmphdr* icmp = l4;
      if (pkt->family != RAMJET_FAMILY_IPV4 || (void*)(icmp + 1) > data_end) return 0;
      if (icmp->type == ICMP_ECHO || icmp->type == ICMP_ECHOREPLY)
        pkt->sport = pkt->dport = icmp->un.echo.id;
      break;
    }
    case NEXTHDR_ICMP: {
      struct icmp6hdr* icmp6 = l4;
      if (pkt->family != RAMJET_FAMILY_IPV6 || (void*)(icmp6 + 1) > data_end) return 0;
      if (icmp6->icmp6_type == ICMPV6_ECHO_REQUEST || icmp6->icmp6_type == ICMPV6_ECHO_REPLY)
        pkt->sport = pkt->dport = icmp6->icmp6_dataun.u_echo.identifier;
      break;
    }
    default:
      return 0;
  }
  pkt->l4_off = (__u16)(l4 - data);
  pkt->has_l4 = 1;
  return 1;
}

/*
 * 1 when the destination is for the hosts on the link rather than for routing:
 * IPv4 multicast (224.0.0.0/4), limited broadcast, link-local (169.254.0.0/16);
 * IPv6 multicast (ff00::/8) and link-local unicast (fe80::/10).
 */
static __always_inline int ramjet_dst_host_scope(const struct ramjet_pkt* pkt) {
  __u32 d = bpf_ntohl(pkt->daddr[0]);
  if (pkt->family == RAMJET_FAMILY_IPV4)
    return (d >> 28) == 0xe || d == 0xffffffff || (d >> 16) == 0xa9fe;
  return (d >> 24) == 0xff || (d >> 22) == 0x3fa;
}

#endif /* RAMJET_LIB_PARSE_H */
