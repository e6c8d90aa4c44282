// Prometheus families for the datapath's outcome counters (bpf/include/ramjet/abi/
// stats.h, the RAMJET_STATS list), as a pure function of the counter values: the
// caller passes Datapath::stats() (the per-CPU `stats` map summed over CPUs), one
// {packets, bytes} per stat, indexed by enum ramjet_stat.
//
//   ramjet_datapath_packets_total{verdict="drop",reason="rule_drop"} 12
//   ramjet_datapath_bytes_total{verdict="drop",reason="rule_drop"} 840
//   ramjet_datapath_events_total{event="flow_new"} 3
//
// verdict is the stat's class lowercased (drop, pass, escalate, fastpath), reason
// its name lowercased. EVENT-class stats are not packet verdicts, so they get their
// own family without bytes; NONE is never counted and never exported.
#pragma once

#include <array>
#include <cstdint>
#include <functional>
#include <span>
#include <string>

#include "datapath/datapath.h"
#include "datapath/fallback_state.h"
#include "ramjet/abi/handoff.h"
#include "ramjet/abi/quic.h"
#include "ramjet/abi/stats.h"
#include "telemetry/metrics.h"

namespace ramjet::datapath {

// `values` has RAMJET_STAT__COUNT entries; a shorter span exports only what it has.
void write_datapath_metrics(telemetry::MetricsWriter& w, std::span<const StatValue> values);

// ramjet_datapath_flows: a gauge of the kernel flow table's entries
// (Datapath::flow_entries()).
void write_flow_table_metrics(telemetry::MetricsWriter& w, std::uint64_t entries);

// ramjet_datapath_fallbacks_total{rule="web",verdict="reject",cause="draining"}: new
// escalated flows that took their rule's on_engine_unavailable fallback
// (Datapath::fallback_counts()); rule is "" for flows without a rule.
void write_fallback_metrics(telemetry::MetricsWriter& w, std::span<const FallbackCount> counts,
                            const std::function<std::string(std::uint32_t)>& rule_name);

// ramjet_tun_handoff_packets_total{result="assigned"}: what the TUN hand-off program
// (bpf/progs/tun_handoff.bpf.c) did with each packet of decapsulated flows
// (TunHandoff::stats(), indexed by enum ramjet_handoff_stat); result is the stat's
// name lowercased. Shared by every ip endpoint, so no endpoint label.
void write_handoff_metrics(telemetry::MetricsWriter& w, std::span<const std::uint64_t> packets);

// ramjet_quic_steering_packets_total{endpoint="web",result="by_cid"}: what each QUIC
// listener's steering program (bpf/progs/quic_reuseport.bpf.c) did with its packets
// (QuicSteering::stats(), indexed by enum ramjet_quic_stat); result lowercased.
struct QuicSteeringStats {
  std::string endpoint;
  std::array<std::uint64_t, RAMJET_QUIC_STAT_COUNT> packets{};
};
void write_quic_steering_metrics(telemetry::MetricsWriter& w,
                                 std::span<const QuicSteeringStats> listeners);

// "drop", "pass", "escalate", "fastpath", "event".
const char* stat_class_label(ramjet_stat_class c);

}  // namespace ramjet::datapath
