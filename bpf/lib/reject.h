/* SPDX-License-Identifier: Apache-2.0 */
/*
 * A TCP RST in answer to a packet, built in place (TC): the frame is cut to
 * Ethernet (+ the VLAN tags it had) + a fresh IPv4/IPv6 header + a 20-byte TCP
 * header, addresses, ports and MACs swapped, checksums computed in full, and the
 * caller sends it back out of the device it came in on.
 *
 * Sequence numbers follow RFC 9293 3.10.7.1 (a segment to a closed port): an ACK
 * gets <SEQ=SEG.ACK><CTL=RST>, anything else <SEQ=0><ACK=SEG.SEQ+SEG.LEN>
 * <CTL=RST,ACK>, where SEG.LEN counts the payload, SYN and FIN. An RST is never
 * answered.
 *
 * The checksum is written in full, so the answer must not leave with a checksum
 * offload pending from the packet it replaces: on veth (the tested case) the
 * receiver trusts a CHECKSUM_PARTIAL skb; a physical NIC with tx checksum offload
 * would need the skb's csum state reset, which no helper offers.
 */
#ifndef RAMJET_LIB_REJECT_H
#define RAMJET_LIB_REJECT_H

#include "csum.h"
#include "defs.h"
#include "parse.h"

#define RAMJET_TCP_HDR_LEN 20
#define RAMJET_IPV4_HDR_LEN 20
#define RAMJET_IPV6_HDR_LEN 40
#define RAMJET_RST_TTL 64

/* Header layouts without bitfields, written with bpf_skb_store_bytes. */
struct ramjet_tcp_hdr {
  __be16 source;
  __be16 dest;
  __be32 seq;
  __be32 ack_seq;
  __u8 doff; /* data offset in the high nibble */
  __u8 flags;
  __be16 window;
  __u16 check;
  __be16 urg_ptr;
};

struct ramjet_ipv4_hdr {
  __u8 version_ihl;
  __u8 tos;
  __be16 tot_len;
  __be16 id;
  __be16 frag_off;
  __u8 ttl;
  __u8 protocol;
  __u16 check;
  __be32 saddr;
  __be32 daddr;
};

struct ramjet_ipv6_hdr {
  __be32 version_flow;
  __be16 payload_len;
  __u8 nexthdr;
  __u8 hop_limit;
  __u32 saddr[4];
  __u32 daddr[4];
};

struct ramjet_ipv4_pseudo {
  __be32 saddr;
  __be32 daddr;
  __u8 zero;
  __u8 proto;
  __be16 len;
};

struct ramjet_ipv6_pseudo {
  __u32 saddr[4];
  __u32 daddr[4];
  __be32 len;
  __u8 zero[3];
  __u8 nexthdr;
};

enum ramjet_reject_result {
  RAMJET_REJECT_BUILT = 0,   /* the frame is now the RST */
  RAMJET_REJECT_NOTHING = 1, /* an RST: never answered */
  RAMJET_REJECT_FAILED = 2,  /* the frame could not be rewritten */
};

/* bpf_csum_diff's running sum -> the 16-bit checksum to store (memory order). */
static __always_inline __u16 ramjet_csum_final(__s64 sum) {
  return (__u16)~ramjet_csum_fold((__u32)sum);
}

/* Cuts the frame after L2 + ip_len + TCP and writes the IP header and the TCP
 * header, whose checksum is completed over `pseudo_sum` (the pseudo-header's). */
static __always_inline int ramjet_rst_write(struct __sk_buff* skb, __u32 l3, const void* ip,
                                            __u32 ip_len, struct ramjet_tcp_hdr* tcp,
                                            __s64 pseudo_sum) {
  tcp->check =
      ramjet_csum_final(bpf_csum_diff(NULL, 0, (__be32*)tcp, sizeof(*tcp), (__wsum)pseudo_sum));
  if (bpf_skb_change_tail(skb, l3 + ip_len + RAMJET_TCP_HDR_LEN, 0) ||
      bpf_skb_store_bytes(skb, l3, ip, ip_len, 0) ||
      bpf_skb_store_bytes(skb, l3 + ip_len, tcp, sizeof(*tcp), 0))
    return -1;
  return 0;
}

static __always_inline int ramjet_tcp_rst(struct __sk_buff* skb, const struct ramjet_pkt* pkt) {
  if (pkt->tcp_flags & RAMJET_TCP_RST) return RAMJET_REJECT_NOTHING;
  __u8 seg[16];
  if (bpf_skb_load_bytes(skb, pkt->l4_off, seg, sizeof(seg))) return RAMJET_REJECT_FAILED;
  __u32 seq = bpf_ntohl(*(__be32*)&seg[4]);
  __be32 ack = *(__be32*)&seg[8];
  __u32 hdrs = (__u32)(pkt->l4_off - pkt->l3_off) + (__u32)(seg[12] >> 4) * 4;
  __u32 seg_len = pkt->l3_len > hdrs ? pkt->l3_len - hdrs : 0;
  if (pkt->tcp_flags & RAMJET_TCP_SYN) seg_len++;
  if (pkt->tcp_flags & RAMJET_TCP_FIN) seg_len++;

  struct ramjet_tcp_hdr tcp;
  __builtin_memset(&tcp, 0, sizeof(tcp));
  tcp.source = pkt->dport;
  tcp.dest = pkt->sport;
  tcp.doff = (RAMJET_TCP_HDR_LEN / 4) << 4;
  if (pkt->tcp_flags & RAMJET_TCP_ACK) {
    tcp.seq = ack;
    tcp.flags = RAMJET_TCP_RST;
  } else {
    tcp.ack_seq = bpf_htonl(seq + seg_len);
    tcp.flags = RAMJET_TCP_RST | RAMJET_TCP_ACK;
  }

  __u8 macs[12];
  if (bpf_skb_load_bytes(skb, 0, macs, sizeof(macs))) return RAMJET_REJECT_FAILED;
  __u8 swapped[12];
  __builtin_memcpy(swapped, macs + 6, 6);
  __builtin_memcpy(swapped + 6, macs, 6);

  __u32 l3 = pkt->l3_off;
  int err;
  if (pkt->family == RAMJET_FAMILY_IPV4) {
    struct ramjet_ipv4_hdr ip;
    __builtin_memset(&ip, 0, sizeof(ip));
    ip.version_ihl = 0x45;
    ip.tot_len = bpf_htons(RAMJET_IPV4_HDR_LEN + RAMJET_TCP_HDR_LEN);
    ip.frag_off = bpf_htons(0x4000); /* DF */
    ip.ttl = RAMJET_RST_TTL;
    ip.protocol = IPPROTO_TCP;
    ip.saddr = pkt->daddr[0];
    ip.daddr = pkt->saddr[0];
    ip.check = ramjet_csum_final(bpf_csum_diff(NULL, 0, (__be32*)&ip, sizeof(ip), 0));
    struct ramjet_ipv4_pseudo ph = {.saddr = ip.saddr,
                                    .daddr = ip.daddr,
                                    .zero = 0,
                                    .proto = IPPROTO_TCP,
                                    .len = bpf_htons(RAMJET_TCP_HDR_LEN)};
    err = ramjet_rst_write(skb, l3, &ip, sizeof(ip), &tcp,
                           bpf_csum_diff(NULL, 0, (__be32*)&ph, sizeof(ph), 0));
  } else {
    struct ramjet_ipv6_hdr ip;
    __builtin_memset(&ip, 0, sizeof(ip));
    ip.version_flow = bpf_htonl(0x60000000);
    ip.payload_len = bpf_htons(RAMJET_TCP_HDR_LEN);
    ip.nexthdr = IPPROTO_TCP;
    ip.hop_limit = RAMJET_RST_TTL;
    __builtin_memcpy(ip.saddr, pkt->daddr, 16);
    __builtin_memcpy(ip.daddr, pkt->saddr, 16);
    struct ramjet_ipv6_pseudo ph;
    __builtin_memset(&ph, 0, sizeof(ph));
    __builtin_memcpy(ph.saddr, ip.saddr, 16);
    __builtin_memcpy(ph.daddr, ip.daddr, 16);
    ph.len = bpf_htonl(RAMJET_TCP_HDR_LEN);
    ph.nexthdr = IPPROTO_TCP;
    err = ramjet_rst_write(skb, l3, &ip, sizeof(ip), &tcp,
                           bpf_csum_diff(NULL, 0, (__be32*)&ph, sizeof(ph), 0));
  }
  if (err) return RAMJET_REJECT_FAILED;
  if (bpf_skb_store_bytes(skb, 0, swapped, sizeof(swapped), 0)) return RAMJET_REJECT_FAILED;
  return RAMJET_REJECT_BUILT;
}

#endif /* RAMJET_LIB_REJECT_H */
