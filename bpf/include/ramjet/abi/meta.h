/* SPDX-License-Identifier: Apache-2.0 */
/*
 * XDP -> TC hand-off. When XDP passes a packet up because TC must finish the job
 * (deliver an escalated flow to the engine, or forward with redirect_neigh where
 * XDP found no neighbour), it prepends this record as XDP metadata
 * (bpf_xdp_adjust_meta); TC ingress reads it at skb->data_meta. The magic tells
 * our record from anything else that might sit in front of the packet.
 */
#ifndef RAMJET_ABI_META_H
#define RAMJET_ABI_META_H

#include "ramjet/abi/common.h"

#define RAMJET_META_MAGIC 0x524a4d31u /* "RJM1" */

struct ramjet_xdp_meta {
  __u32 magic;       /* RAMJET_META_MAGIC */
  __u32 endpoint_id; /* ESCALATE: engine endpoint */
  __u64 flow_id;
  __u8 verdict; /* enum ramjet_action: ESCALATE or FASTPATH */
  __u8 reason;  /* enum ramjet_stat XDP counted */
  __u8 pad[6];
};
RAMJET_ABI_SIZE(struct ramjet_xdp_meta, 24);

/*
 * Escalation delivery: TC ingress assigns the packet to the socket in the
 * `listeners` sockmap at RAMJET_LISTENER_SLOT(endpoint, family) and sets
 * skb->mark to the loader's escalate mark; ramjetd installs a policy route
 * (fwmark -> local table) so the stack delivers it instead of forwarding it.
 */
#define RAMJET_MAX_ENDPOINTS 64
#define RAMJET_LISTENER_SLOT(endpoint_id, is_v6) ((endpoint_id) * 2u + ((is_v6) ? 1u : 0u))

#endif /* RAMJET_ABI_META_H */
