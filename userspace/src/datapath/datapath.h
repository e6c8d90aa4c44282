// The datapath control plane: the only code that touches libbpf and the BPF
// skeleton. Loads bpf/progs/datapath.bpf.c, pins its maps under
// <pin_root>/<instance>/ (adopting pins a previous run left when their ABI stamp
// and definitions match this build, re-creating them otherwise), attaches XDP and
// tcx links to the configured interfaces, installs the policy route escalated
// packets need, writes rules, and runs a sweeper thread (idle flow expiry, expiry
// of hook-issued blocks and classes, ring-buffer events).
//
// Thread-safety: every public method may be called from any thread (map updates
// are syscalls; the few shared fields are behind a mutex).
#pragma once

#include <array>
#include <atomic>
#include <chrono>
#include <cstdint>
#include <deque>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "datapath/fallback_state.h"
#include "ramjet/abi/ramjet.h"
#include "ramjet/config/config.h"
#include "ramjet/hooks/connection.h"
#include "ramjet/net.h"
#include "ramjet/result.h"

struct datapath;     // the bpftool skeleton (bpf/build/datapath.skel.h)
struct ring_buffer;  // libbpf

namespace ramjet::datapath {

struct InterfaceInfo {
  std::string name;
  std::uint32_t ifindex = 0;
  std::string xdp_mode;              // "native" or "generic"; empty when the fast path runs in tc
  std::string fastpath_hook;         // "xdp" or "tc"
  std::string fastpath_hook_reason;  // "configured", "auto: veth is a virtual device", ...
};

struct StatValue {
  std::uint64_t packets = 0;
  std::uint64_t bytes = 0;
};
using StatArray = std::array<StatValue, RAMJET_STAT__COUNT>;

struct FlowEntry {
  ramjet_flow_key key;
  ramjet_flow flow;
};

struct Event {
  std::uint16_t type = 0;
  std::uint16_t reason = 0;
  std::uint32_t ifindex = 0;
  std::uint64_t ts_ns = 0;
  // FLOW_NEW / ESCALATE / FALLBACK / RECOVERED (flow.flow partially filled; the
  // fallback events set flow.flow.fallback and fallback_cause).
  std::optional<FlowEntry> flow;
  std::uint32_t packet_len = 0;  // DROP_SAMPLE
};

// Makes sure pin_root lives on a bpffs: mounts one at /sys/fs/bpf (as a fresh
// `ip netns exec` needs) or at pin_root itself. Datapath::start calls it; ramjetd
// calls it first to lock <pin_root>/<instance> before anything is adopted.
Result<void> ensure_bpffs(const std::string& pin_root);

struct StartOptions {
  std::string pin_root = "/sys/fs/bpf/ramjet";
  // Leave programs, links, maps and routes in place on stop (restart mode).
  bool keep_on_exit = false;
};

class Datapath {
 public:
  ~Datapath();
  Datapath(const Datapath&) = delete;
  Datapath& operator=(const Datapath&) = delete;

  // Loads or adopts, attaches, writes the policy. Errors say what is missing
  // (privileges, an interface, incompatible pins).
  static Result<std::unique_ptr<Datapath>> start(const config::Config& config,
                                                 const StartOptions& options);

  // Swaps rules and default action in place (no detach; flows keep their state and
  // re-evaluate once against the new rules).
  Result<void> apply_policy(const config::Config& config);

  // Puts an engine listener in the escalation sockmap.
  Result<void> register_listener(std::uint32_t endpoint_id, int fd, bool v6);

  // The draining mark of the escalation targets (every configured endpoint):
  // set first thing on SIGTERM, so new escalated flows take their fallback at once
  // while open connections finish; cleared once this process's listeners are
  // registered and its workers run (a --keep-datapath restart inherits the mark).
  Result<void> mark_draining();
  Result<void> mark_ready();
  // Names of the endpoints marked draining now.
  std::vector<std::string> draining() const;

  // New flows that fell back, per rule, mode and cause.
  std::vector<FallbackCount> fallback_counts() const;

  // Hook-issued kernel verdicts. duration 0 = until removed.
  Result<void> block(const Cidr& prefix, std::chrono::milliseconds duration, std::uint32_t tag);
  Result<void> unblock(const Cidr& prefix);
  Result<void> set_class(const IpAddress& src, const IpAddress& dst, std::uint8_t proto,
                         std::uint16_t dst_port, std::uint8_t action,
                         std::chrono::milliseconds duration, std::uint32_t tag);

  // The kernel flow of a connection (client -> local as the client sent it).
  std::optional<FlowEntry> lookup_flow(const SocketAddress& client, const SocketAddress& local,
                                       std::uint8_t proto) const;
  // Next id from the counter the BPF programs use: one id space for kernel and engine.
  FlowId next_flow_id();

  StatArray stats() const;
  std::vector<FlowEntry> flows() const;
  // Entries in the flow table as of the last sweep (the sweeper reads the whole
  // table once a second anyway), so reading it costs nothing; 0 before the first.
  std::uint64_t flow_entries() const { return flow_entries_.load(std::memory_order_relaxed); }
  std::vector<Event> recent_events() const;
  const std::vector<InterfaceInfo>& interfaces() const { return interfaces_; }
  const std::string& pin_dir() const { return pin_dir_; }
  bool adopted() const { return adopted_; }
  // Why the pinned maps found at start were not adopted but re-created (empty: they
  // were adopted, or there were none).
  const std::string& recreated_because() const { return recreated_because_; }
  std::uint64_t abi_stamp() const { return abi_stamp_; }
  std::uint64_t monotonic_now_ns() const;

  // endpoint id <-> name (ids are 1 + the endpoint's index in config).
  std::string endpoint_name(std::uint32_t id) const;
  std::string rule_name(std::uint32_t rule_id) const;

  // Detaches and removes pins, unless keep_on_exit. Idempotent.
  void stop();

 private:
  Datapath() = default;
  Result<void> load(const config::Config& config);
  Result<void> attach(const config::Config& config);
  void sweeper();
  void sweep_once();

  struct SkelDeleter {
    void operator()(::datapath* s) const;
  };
  std::unique_ptr<::datapath, SkelDeleter> skel_;
  StartOptions options_;
  config::DatapathSettings settings_;
  std::string pin_dir_;
  bool adopted_ = false;
  bool xdp_metadata_ = true;  // kernel_allows_xdp_metadata()
  std::string recreated_because_;
  std::uint64_t abi_stamp_ = 0;
  std::vector<InterfaceInfo> interfaces_;
  std::vector<std::pair<std::string, int>> links_;  // pin path, fd
  std::vector<std::string> endpoint_names_;
  bool routes_installed_ = false;

  mutable std::mutex mu_;
  // Serialises writers of `denylist` and `classes` with the counts in .data that
  // let XDP skip empty maps (deny_count, class_count): a count is raised before
  // an entry appears and lowered after it is gone, never below the truth.
  std::mutex count_mu_;
  std::vector<std::pair<std::uint32_t, std::string>> rule_names_;  // guarded by mu_
  std::deque<Event> events_;                                       // guarded by mu_

  ::ring_buffer* ring_ = nullptr;
  std::atomic<bool> stopping_{false};
  std::atomic<std::uint64_t> flow_entries_{0};
  std::thread sweeper_;
  bool stopped_ = false;
};

}  // namespace ramjet::datapath
