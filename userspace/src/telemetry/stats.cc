#include "telemetry/stats.h"

namespace ramjet::telemetry {

StatsRegistry& stats() {
  static StatsRegistry registry;
  return registry;
}

}  // namespace ramjet::telemetry
