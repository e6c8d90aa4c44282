/* SPDX-License-Identifier: Apache-2.0 */
/* Umbrella include for the whole ramjet kernel<->userspace ABI. */
#ifndef RAMJET_ABI_RAMJET_H
#define RAMJET_ABI_RAMJET_H

#include "ramjet/abi/action.h"
#include "ramjet/abi/common.h"
#include "ramjet/abi/events.h"
#include "ramjet/abi/fallback.h"
#include "ramjet/abi/flow.h"
#include "ramjet/abi/meta.h"
#include "ramjet/abi/policy.h"
#include "ramjet/abi/stats.h"

#endif /* RAMJET_ABI_RAMJET_H */
