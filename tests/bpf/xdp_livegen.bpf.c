// SPDX-License-Identifier: GPL-2.0 OR Apache-2.0
/*
 * Benchmark traffic generator (not part of the datapath): run by xdp_livegen
 * through BPF_PROG_TEST_RUN with BPF_F_TEST_XDP_LIVE_FRAMES, it XDP_REDIRECTs
 * each template frame out of `out_ifindex`, cycling the UDP source port over
 * `flows` values. Sent into a veth, the peer receives xdp_frames, as a NIC's
 * XDP receives raw frames, instead of the skbs an AF_PACKET generator makes.
 */
// clang-format off: vmlinux.h must come first (it provides the kernel types).
#include "vmlinux.h"
// clang-format on
#include <bpf/bpf_endian.h>
#include <bpf/bpf_helpers.h>

char LICENSE[] SEC("license") = "Dual BSD/GPL";

/* Ethernet + IPv4 (no options) + UDP header of the template, written into every
 * frame before it is sent: live-frames pages are recycled without being
 * re-initialised, and whoever forwarded a frame rewrote its MACs, TTL and
 * checksum in place. */
#define LIVEGEN_HDR_LEN 42
const volatile __u8 header[LIVEGEN_HDR_LEN] = {0};

const volatile __u32 out_ifindex = 0;
const volatile __u32 flows = 1;
const volatile __u16 sport_base = 10000;

/* One generator thread: a plain counter is enough. */
__u32 next_flow = 0;

SEC("xdp")
int xdp_livegen(struct xdp_md* ctx) {
  void* data = (void*)(long)ctx->data;
  void* data_end = (void*)(long)ctx->data_end;
  /* Ethernet + IPv4 without options + UDP, as the driver builds the template. */
  struct udphdr* udp = data + sizeof(struct ethhdr) + sizeof(struct iphdr);
  if ((void*)(udp + 1) > data_end || data + LIVEGEN_HDR_LEN > data_end) return XDP_ABORTED;
  /* Volatile reads (a memcpy would fold the const initializer): clang makes
   * byte loads and stores of these, 42 of each, cheap next to the redirect. */
  __u8* out = data;
#pragma unroll
  for (int i = 0; i < LIVEGEN_HDR_LEN; i++) out[i] = header[i];
  __u32 n = next_flow + 1;
  if (n >= flows) n = 0;
  next_flow = n;
  udp->source = bpf_htons((__u16)(sport_base + n));
  return bpf_redirect(out_ifindex, 0);
}
