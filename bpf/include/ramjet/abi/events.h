/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Ring buffer records (map `events`, BPF_MAP_TYPE_RINGBUF). Every record starts
 * with struct ramjet_event_header; `type` selects the body.
 */
#ifndef RAMJET_ABI_EVENTS_H
#define RAMJET_ABI_EVENTS_H

#include "ramjet/abi/common.h"
#include "ramjet/abi/flow.h"

enum ramjet_event_type {
  RAMJET_EVENT_NONE = 0,
  RAMJET_EVENT_FLOW_NEW = 1,    /* struct ramjet_event_flow */
  RAMJET_EVENT_ESCALATE = 2,    /* struct ramjet_event_flow, first packet only */
  RAMJET_EVENT_DROP_SAMPLE = 3, /* struct ramjet_event_drop, 1 in drop_sample_rate */
  RAMJET_EVENT_FALLBACK = 4,    /* struct ramjet_event_fallback: a healthy rule fell back */
  RAMJET_EVENT_RECOVERED = 5    /* struct ramjet_event_fallback: the engine took a flow again */
};

struct ramjet_event_header {
  __u64 ts_ns;   /* bpf_ktime_get_ns */
  __u32 ifindex; /* ingress */
  __u16 type;    /* enum ramjet_event_type */
  __u16 reason;  /* enum ramjet_stat */
};
RAMJET_ABI_SIZE(struct ramjet_event_header, 16);

struct ramjet_event_flow {
  struct ramjet_event_header hdr;
  struct ramjet_flow_key key;
  __u64 flow_id;
  __u32 rule_id;
  __u32 endpoint_id;
  __u8 verdict;     /* enum ramjet_action */
  __u8 origin_side; /* 0: originator is key.lo */
  __u8 pad[6];
};
RAMJET_ABI_SIZE(struct ramjet_event_flow, 80);

/* The flow that changed its rule's health (ramjet/abi/fallback.h); hdr.reason is
 * the TC stat of the packet. */
struct ramjet_event_fallback {
  struct ramjet_event_header hdr;
  struct ramjet_flow_key key;
  __u64 flow_id;
  __u32 rule_id;
  __u32 endpoint_id;
  __u8 mode;  /* enum ramjet_fallback_mode; NONE for RECOVERED */
  __u8 cause; /* enum ramjet_fallback_cause; NONE for RECOVERED */
  __u8 origin_side;
  __u8 pad[5];
};
RAMJET_ABI_SIZE(struct ramjet_event_fallback, 80);

#define RAMJET_DROP_SAMPLE_BYTES 128

struct ramjet_event_drop {
  struct ramjet_event_header hdr;
  __u32 packet_len;  /* full frame length */
  __u32 capture_len; /* bytes valid in data[] */
  __u8 data[RAMJET_DROP_SAMPLE_BYTES];
};
RAMJET_ABI_SIZE(struct ramjet_event_drop, 152);

#endif /* RAMJET_ABI_EVENTS_H */
