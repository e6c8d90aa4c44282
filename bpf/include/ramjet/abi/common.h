/* SPDX-License-Identifier: Apache-2.0 */
/*
 * ramjet ABI: shared by BPF programs (clang -target bpf) and userspace (C++20).
 *
 * Everything under ramjet/abi/ is the kernel<->userspace contract. Rules:
 *  - fixed-width fields only (__u8..__u64), explicit padding, no bitfields;
 *  - every struct has a size assert (RAMJET_ABI_SIZE) and the BTF layout test
 *    (tests/bpf/abi_layout_test.cc) checks member offsets against the object file;
 *  - multi-byte addresses and ports are in network byte order unless the field
 *    name says `_host`.
 *
 * BPF programs include vmlinux.h before any ramjet header; userspace gets the
 * __uN types from <linux/types.h>.
 */
#ifndef RAMJET_ABI_COMMON_H
#define RAMJET_ABI_COMMON_H

#if defined(__bpf__)
#ifndef __VMLINUX_H__
#error "BPF: include vmlinux.h before ramjet/abi headers"
#endif
#else
#include <linux/types.h>
#endif

#ifdef __cplusplus
#define RAMJET_STATIC_ASSERT(cond, msg) static_assert(cond, msg)
#else
#define RAMJET_STATIC_ASSERT(cond, msg) _Static_assert(cond, msg)
#endif

/* Layout guards, usable at file scope in C and C++. */
#define RAMJET_ABI_SIZE(type, size) \
  RAMJET_STATIC_ASSERT(sizeof(type) == (size), "ABI size of " #type " changed")
#define RAMJET_ABI_OFFSET(type, member, off)                      \
  RAMJET_STATIC_ASSERT(__builtin_offsetof(type, member) == (off), \
                       "ABI offset of " #type "." #member " changed")

/* Address families as stored in ABI structs (not AF_* so the value fits a byte
 * and means the same on every libc). */
enum ramjet_family {
  RAMJET_FAMILY_NONE = 0,
  RAMJET_FAMILY_IPV4 = 4,
  RAMJET_FAMILY_IPV6 = 6,
};

/* Addresses are 16 bytes in network order; IPv4 uses the first 4, rest zero. */
#define RAMJET_ADDR_WORDS 4

#endif /* RAMJET_ABI_COMMON_H */
