// Session: what every on-ramp's per-connection object shares - registration with
// its worker (so drain can find it), the connection counters, the audit record,
// and force_close.
#pragma once

#include <chrono>
#include <memory>
#include <optional>
#include <string>

#include "proxy/worker_context.h"
#include "ramjet/hooks/connection.h"
#include "ramjet/hooks/http.h"
#include "ramjet/task.h"
#include "telemetry/audit_log.h"
#include "telemetry/engine_connection.h"
#include "telemetry/event_feed.h"
#include "telemetry/tracing.h"

namespace ramjet::proxy {

class Relay;

// Where a session is in its life, as GET /v1/connections shows it.
enum class SessionState : std::uint8_t { kAccepted, kHooks, kConnecting, kRelaying, kClosing };
const char* to_string(SessionState s);

// One line of the event feed (telemetry/event_feed.h) for an engine connection:
// "connection_open" (stats null) or "connection_close".
telemetry::ConnectionEvent connection_event(const ConnectionInfo& info,
                                            const ConnectionStats* closed);

// Where a connection accepted by a transparent endpoint was going: its local address
// (the datapath and the IP on-ramp keep the original destination), as an IP literal.
HostPort original_destination(const ConnectionInfo& info);

class Session {
 public:
  // `counters` is the worker's row for the session's endpoint.
  Session(WorkerContext& wc, telemetry::CounterRow& counters) : wc_(wc), counters_(counters) {
    wc_.sessions.insert(this);
    counters_.add(telemetry::Counter::connections_accepted);
    counters_.add(telemetry::Counter::connections_active);
    audit_.start = std::chrono::system_clock::now();
  }
  virtual ~Session() {
    counters_.add(telemetry::Counter::connections_active, -1);
    counters_.add(telemetry::Counter::connections_closed);
    wc_.sessions.erase(this);
    if (wc_.flow_board != nullptr && view_.info != nullptr) wc_.flow_board->remove(board_slot_);
    if (wc_.draining && wc_.sessions.empty()) wc_.sessions_empty.set();
  }
  Session(const Session&) = delete;
  Session& operator=(const Session&) = delete;

  // Ends the session early (drain deadline, an operator's kill). Safe at any time.
  virtual void force_close(CloseReason why) = 0;

  // What the admin API shows of it; call on the session's worker thread.
  telemetry::EngineConnection describe() const;
  FlowId id() const { return view_.info->id; }

 protected:
  // What describe() reads: the subclass's own members, bound once in its constructor.
  struct View {
    const ConnectionInfo* info = nullptr;
    const ConnectionStats* stats = nullptr;  // bytes counted so far (outside the relay)
    const std::unique_ptr<Relay>* relay = nullptr;
    const runtime::Clock::time_point* started = nullptr;
  };
  // Also puts the flow id on the worker's FlowBoard (the crash report's list).
  void bind_view(View v) {
    view_ = v;
    if (wc_.flow_board != nullptr) board_slot_ = wc_.flow_board->add(v.info->id);
  }
  void set_state(SessionState s) { state_ = s; }

  // The close epilogue every on-ramp shares: TCP_INFO into `stats`, closing the
  // client socket, the counters, IngressHook::handle_connection_close, the access
  // log line and (when audit_.kind is set) the audit line. The on-ramp closes its
  // upstream side first.
  void close_epilogue(int client_fd, const ConnectionInfo& info, ConnectionStats& stats,
                      std::optional<CloseReason> reason, runtime::Clock::time_point started,
                      void* ctx);

  // What EgressChain records decisions into: null when the audit log is off, so
  // the chain builds no strings for it.
  telemetry::FlowDecisions* audited_decisions() {
    return wc_.audit_log != nullptr ? &audit_.decisions : nullptr;
  }
  // IngressHook::handle_connection with its trace, audit record, kernel verdict and
  // counter; true when the hook blocked the connection.
  Task<bool> ingress_blocks(const ConnectionInfo& info, void* ctx);

  // HttpRequestHook::handle_response with its trace (both HTTP on-ramps, whatever the
  // origin spoke); the directive as the hook gave it.
  Task<ResponseDirective> run_response_hook(const ConnectionInfo& info, void* ctx,
                                            const HttpRequestHead& req, HttpResponseHead& resp,
                                            void* req_ctx);

  // Records IngressHook::handle_connection's decision.
  void audit_ingress(bool blocked, const std::string& reason) {
    audit_.decisions.ingress.decision = blocked ? "block" : "allow";
    if (blocked) audit_.decisions.ingress.reason = reason;
  }

  WorkerContext& wc_;
  telemetry::CounterRow& counters_;
  telemetry::FlowAudit audit_;
  // The trace and span of the last request or tunnel begun on this connection
  // (tracing on), for describe(): flows and spans name each other.
  void note_span(const std::optional<telemetry::Span>& span) {
    if (span) last_span_ = std::pair(span->trace_id, span->id);
  }
  std::optional<std::pair<telemetry::TraceId, telemetry::SpanId>> last_span_;

 private:
  View view_;
  std::uint32_t board_slot_ = telemetry::FlowBoard::kNoSlot;
  SessionState state_ = SessionState::kAccepted;
};

}  // namespace ramjet::proxy
