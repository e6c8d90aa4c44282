#include "telemetry/hook_trace.h"

namespace ramjet::telemetry {

HookTrace& hook_trace() {
  static HookTrace trace;
  return trace;
}

}  // namespace ramjet::telemetry
