/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Engine-unavailable fallback of escalated flows.
 *
 * TC ingress delivers an escalated flow's packets to the engine (ramjet/abi/meta.h).
 * When it cannot (the cause), the flow takes its rule's fallback (the mode), decided
 * in the kernel without asking userspace:
 *   PASS    forward as if no escalate rule matched (FASTPATH when the datapath's
 *           default action is fastpath, else the kernel stack forwards it)
 *   REJECT  answer at once: a TCP RST built in TC and sent back out of the ingress
 *           device
 *   DROP    drop, counted
 * The flow entry records the mode and cause (ramjet_flow.fallback / fallback_cause)
 * the first time, and keeps them for its lifetime, across policy re-evaluations.
 * Connections the engine already accepted keep going to their own sockets.
 */
#ifndef RAMJET_ABI_FALLBACK_H
#define RAMJET_ABI_FALLBACK_H

#include "ramjet/abi/common.h"

/* ramjet_rule.fallback, ramjet_flow.fallback. 0 means "none": a flow that did not
 * fall back, or a rule that leaves it to the `default_fallback` global. */
#define RAMJET_FALLBACK_MODES(X) \
  X(NONE, 0)                     \
  X(PASS, 1)                     \
  X(REJECT, 2)                   \
  X(DROP, 3)

/* Why the engine could not take the flow (ramjet_flow.fallback_cause). */
#define RAMJET_FALLBACK_CAUSES(X)                                               \
  X(NONE, 0)              /* the engine took it */                              \
  X(NO_LISTENER, 1)       /* no listening socket: engine stopped or crashed */  \
  X(DRAINING, 2)          /* the target is marked draining in `engine_state` */ \
  X(ACCEPT_QUEUE_FULL, 3) /* the listener's accept queue is full */             \
  X(ASSIGN_FAILED, 4)     /* bpf_sk_assign refused the listener */

enum ramjet_fallback_mode {
#define RAMJET_X_ENUM(name, value) RAMJET_FALLBACK_##name = value,
  RAMJET_FALLBACK_MODES(RAMJET_X_ENUM)
#undef RAMJET_X_ENUM
      RAMJET_FALLBACK__COUNT
};

enum ramjet_fallback_cause {
#define RAMJET_X_ENUM(name, value) RAMJET_FALLBACK_CAUSE_##name = value,
  RAMJET_FALLBACK_CAUSES(RAMJET_X_ENUM)
#undef RAMJET_X_ENUM
      RAMJET_FALLBACK_CAUSE__COUNT
};

/* Map `engine_state` (array, one __u32 per endpoint id): flags userspace sets.
 * DRAINING: ramjetd got SIGTERM (or stopped with --keep-datapath): new flows take
 * the fallback at once while open connections finish. The next ramjetd clears it
 * once its listeners are registered. */
#define RAMJET_ENGINE_DRAINING 1u

/* Map `fallback_counts` (per-CPU hash, rule_id -> this): new flows that took a
 * fallback, by mode and cause. rule_id 0: flows without a rule (hook classes). */
struct ramjet_fallback_count {
  __u64 flows[RAMJET_FALLBACK__COUNT][RAMJET_FALLBACK_CAUSE__COUNT];
};
RAMJET_ABI_SIZE(struct ramjet_fallback_count,
                8 * RAMJET_FALLBACK__COUNT * RAMJET_FALLBACK_CAUSE__COUNT);

/* Map `rule_health` (hash, rule_id -> this): whether the rule's last new flow fell
 * back. A change emits RAMJET_EVENT_FALLBACK / RAMJET_EVENT_RECOVERED. */
struct ramjet_rule_health {
  __u64 falling_back; /* 0 healthy, 1 falling back (64-bit: BPF cmpxchg) */
};
RAMJET_ABI_SIZE(struct ramjet_rule_health, 8);

#ifdef __cplusplus
/* Names as declared ("REJECT", "ACCEPT_QUEUE_FULL"); metrics and the CLI lowercase them. */
inline constexpr const char* ramjet_fallback_names[RAMJET_FALLBACK__COUNT] = {
#define RAMJET_X_NAME(name, value) #name,
    RAMJET_FALLBACK_MODES(RAMJET_X_NAME)
#undef RAMJET_X_NAME
};
inline constexpr const char* ramjet_fallback_cause_names[RAMJET_FALLBACK_CAUSE__COUNT] = {
#define RAMJET_X_NAME(name, value) #name,
    RAMJET_FALLBACK_CAUSES(RAMJET_X_NAME)
#undef RAMJET_X_NAME
};
#endif

#endif /* RAMJET_ABI_FALLBACK_H */
