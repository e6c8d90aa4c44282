/* SPDX-License-Identifier: Apache-2.0 */
/* Rule actions and cached flow verdicts. */
#ifndef RAMJET_ABI_ACTION_H
#define RAMJET_ABI_ACTION_H

#include "ramjet/abi/common.h"

/* 0 is reserved: an all-zero rule slot is "empty" and never matches. */
#define RAMJET_ACTIONS(X)                                                  \
  X(NONE, 0)      /* empty rule slot */                                    \
  X(PASS, 1)      /* hand to the kernel stack */                           \
  X(DROP, 2)      /* XDP_DROP, reason RULE_DROP / DEFAULT_DROP */          \
  X(FASTPATH, 3)  /* forward in kernel: fib lookup, TTL-1, redirect */     \
  X(ESCALATE, 4)  /* to the userspace engine (flow marked; TC delivers) */ \
  X(RATELIMIT, 5) /* token bucket per source (rate_pps/burst), then PASS */

enum ramjet_action {
#define RAMJET_X_ENUM(name, value) RAMJET_ACTION_##name = value,
  RAMJET_ACTIONS(RAMJET_X_ENUM)
#undef RAMJET_X_ENUM
      RAMJET_ACTION__COUNT
};

#ifdef __cplusplus
inline constexpr const char* ramjet_action_names[RAMJET_ACTION__COUNT] = {
#define RAMJET_X_NAME(name, value) #name,
    RAMJET_ACTIONS(RAMJET_X_NAME)
#undef RAMJET_X_NAME
};
#endif

#endif /* RAMJET_ABI_ACTION_H */
