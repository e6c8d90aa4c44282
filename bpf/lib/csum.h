/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Internet checksum helpers (RFC 1071) and incremental updates (RFC 1624).
 * Pure functions on values: usable from BPF and from userspace tests.
 * All 16/32-bit arguments are in network byte order, as read from the packet.
 */
#ifndef RAMJET_LIB_CSUM_H
#define RAMJET_LIB_CSUM_H

#if defined(__bpf__)
#ifndef __VMLINUX_H__
#error "include vmlinux.h before bpf/lib headers"
#endif
#include <bpf/bpf_helpers.h>
#else
#include <linux/types.h>
#ifndef __always_inline
#define __always_inline inline __attribute__((always_inline))
#endif
#endif

/* Folds a 32-bit one's-complement accumulator to 16 bits (not inverted). */
static __always_inline __u16 ramjet_csum_fold(__u32 sum) {
  sum = (sum & 0xffff) + (sum >> 16);
  sum = (sum & 0xffff) + (sum >> 16);
  return (__u16)sum;
}

/*
 * RFC 1624 eqn. 3: HC' = ~(~HC + ~m + m'), for a 16-bit field changing from
 * `old` to `new_val`. Works in either byte order as long as all three agree.
 */
static __always_inline __u16 ramjet_csum_replace16(__u16 check, __u16 old, __u16 new_val) {
  __u32 sum = (__u16)~check;
  sum += (__u16)~old;
  sum += new_val;
  return (__u16)~ramjet_csum_fold(sum);
}

/* Same for a 32-bit field (an IPv4 address under NAT): two 16-bit words. */
static __always_inline __u16 ramjet_csum_replace32(__u16 check, __u32 old, __u32 new_val) {
  __u32 sum = (__u16)~check;
  sum += (__u16) ~(old >> 16);
  sum += (__u16) ~(old & 0xffff);
  sum += new_val >> 16;
  sum += new_val & 0xffff;
  return (__u16)~ramjet_csum_fold(sum);
}

/*
 * Full checksum over a buffer of `len` bytes (even or odd), seeded with `sum`.
 * Userspace-only: BPF cannot loop over variable-length packet data cheaply.
 */
#if !defined(__bpf__)
static inline __u32 ramjet_csum_partial(const void* buf, unsigned len, __u32 sum) {
  const unsigned char* p = (const unsigned char*)buf;
  while (len > 1) {
    sum += (__u32)((p[0] << 8) | p[1]); /* big-endian 16-bit words */
    p += 2;
    len -= 2;
  }
  if (len) sum += (__u32)(p[0] << 8);
  return sum;
}
#endif

#endif /* RAMJET_LIB_CSUM_H */
