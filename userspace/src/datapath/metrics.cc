#include "datapath/metrics.h"

#include <algorithm>
#include <array>
#include <string>

#include "datapath/kernel_flow.h"

namespace ramjet::datapath {

namespace {

std::string lowercase(std::string_view s) {
  std::string out(s);
  for (char& c : out)
    if (c >= 'A' && c <= 'Z') c = static_cast<char>(c - 'A' + 'a');
  return out;
}

// Lowercased names, built once.
const std::array<std::string, RAMJET_STAT__COUNT>& label_names() {
  static const auto names = [] {
    std::array<std::string, RAMJET_STAT__COUNT> n;
    for (std::size_t i = 0; i < n.size(); ++i) n[i] = lowercase(ramjet_stat_names[i]);
    return n;
  }();
  return names;
}

}  // namespace

const char* stat_class_label(ramjet_stat_class c) {
  switch (c) {
    case RAMJET_STAT_CLASS_DROP:
      return "drop";
    case RAMJET_STAT_CLASS_PASS:
      return "pass";
    case RAMJET_STAT_CLASS_ESCALATE:
      return "escalate";
    case RAMJET_STAT_CLASS_FASTPATH:
      return "fastpath";
    case RAMJET_STAT_CLASS_EVENT:
      return "event";
  }
  return "unknown";
}

void write_datapath_metrics(telemetry::MetricsWriter& w, std::span<const StatValue> values) {
  const auto& names = label_names();
  std::size_t n = std::min<std::size_t>(values.size(), RAMJET_STAT__COUNT);
  auto is_verdict = [](std::size_t i) {
    return i != RAMJET_STAT_NONE && ramjet_stat_classes[i] != RAMJET_STAT_CLASS_EVENT;
  };
  using telemetry::MetricType;

  // One family per field of StatValue, one sample per verdict stat.
  auto verdicts = [&](std::string_view name, std::string_view help,
                      std::uint64_t StatValue::*field) {
    if (!w.family(name, MetricType::kCounter, help)) return;
    for (std::size_t i = 0; i < n; ++i)
      if (is_verdict(i))
        w.sample({{"verdict", stat_class_label(ramjet_stat_classes[i])}, {"reason", names[i]}},
                 static_cast<double>(values[i].*field));
  };
  verdicts("ramjet_datapath_packets_total",
           "Packets the XDP/TC programs gave a verdict, by verdict and reason",
           &StatValue::packets);
  verdicts("ramjet_datapath_bytes_total",
           "Bytes of the packets in ramjet_datapath_packets_total, by verdict and reason",
           &StatValue::bytes);
  if (w.family("ramjet_datapath_events_total", MetricType::kCounter,
               "Datapath bookkeeping events (flow entries created, ring buffer losses, ...)")) {
    for (std::size_t i = 0; i < n; ++i)
      if (i != RAMJET_STAT_NONE && ramjet_stat_classes[i] == RAMJET_STAT_CLASS_EVENT)
        w.sample({{"event", names[i]}}, static_cast<double>(values[i].packets));
  }
}

void write_fallback_metrics(telemetry::MetricsWriter& w, std::span<const FallbackCount> counts,
                            const std::function<std::string(std::uint32_t)>& rule_name) {
  if (!w.family("ramjet_datapath_fallbacks_total", telemetry::MetricType::kCounter,
                "New escalated flows the engine could not take, by rule, the fallback they "
                "took (verdict) and why (cause)"))
    return;
  for (const auto& c : counts) {
    std::string rule = c.rule_id ? rule_name(c.rule_id) : "";
    w.sample({{"rule", rule},
              {"verdict", std::string(fallback_name(c.mode))},
              {"cause", std::string(fallback_cause_name(c.cause))}},
             static_cast<double>(c.flows));
  }
}

void write_handoff_metrics(telemetry::MetricsWriter& w, std::span<const std::uint64_t> packets) {
  static const auto names = [] {
    std::array<std::string, RAMJET_HANDOFF_STAT_COUNT> n;
#define RAMJET_X_NAME(name, value) n[value] = lowercase(#name);
    RAMJET_HANDOFF_STATS(RAMJET_X_NAME)
#undef RAMJET_X_NAME
    return n;
  }();
  if (!w.family("ramjet_tun_handoff_packets_total", telemetry::MetricType::kCounter,
                "Packets of decapsulated IP flows the TUN hand-off program handled, by what it "
                "did (assigned to an endpoint's socket, left to the host's own socket, or why "
                "it dropped them)"))
    return;
  const std::size_t n = std::min<std::size_t>(packets.size(), RAMJET_HANDOFF_STAT_COUNT);
  for (std::size_t i = 0; i < n; ++i)
    w.sample({{"result", names[i]}}, static_cast<double>(packets[i]));
}

void write_quic_steering_metrics(telemetry::MetricsWriter& w,
                                 std::span<const QuicSteeringStats> listeners) {
  static const auto names = [] {
    std::array<std::string, RAMJET_QUIC_STAT_COUNT> n;
#define RAMJET_X_NAME(name, value) n[value] = lowercase(#name);
    RAMJET_QUIC_STATS(RAMJET_X_NAME)
#undef RAMJET_X_NAME
    return n;
  }();
  if (listeners.empty() ||
      !w.family("ramjet_quic_steering_packets_total", telemetry::MetricType::kCounter,
                "Packets to a QUIC listener's socket group, by how the steering program chose "
                "the worker (by_cid: the one its connection id names; the others: the kernel's "
                "4-tuple hash, and why)"))
    return;
  for (const QuicSteeringStats& l : listeners)
    for (std::size_t i = 0; i < RAMJET_QUIC_STAT_COUNT; ++i)
      w.sample({{"endpoint", l.endpoint}, {"result", names[i]}}, static_cast<double>(l.packets[i]));
}

void write_flow_table_metrics(telemetry::MetricsWriter& w, std::uint64_t entries) {
  if (w.family("ramjet_datapath_flows", telemetry::MetricType::kGauge,
               "Entries in the kernel flow table, as of the last sweep (once a second)"))
    w.sample(static_cast<double>(entries));
}

}  // namespace ramjet::datapath
