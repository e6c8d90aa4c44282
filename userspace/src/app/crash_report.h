// Crash reports. On SIGSEGV, SIGBUS, SIGFPE, SIGILL or SIGABRT, before the default action
// (a core dump, then systemd's restart), ramjetd writes a report to server.crash_dir and
// to its log (stderr):
//   - the signal, its code and fault address, the crashed thread, pid, time;
//   - the app's name and version, the config file and its SHA-256;
//   - the flow ids each worker was handling (telemetry::FlowBoard);
//   - a symbolized stack of every thread (function, file:line, module).
//
// The handler itself does only async-signal-safe work (open, write, poll). The stacks
// come from a reporter process started at launch, before any other thread: this same
// binary re-executed with `--crash-reporter`, waiting on a pipe. On a crash the handler
// tells it the crashed thread and the report file; it attaches to every thread of the
// daemon with libdw (elfutils, ptrace), unwinds and symbolizes them from outside, appends
// them to the report and the log, and answers; then the handler lets the signal take its
// default action. Symbolizing in the crashed process would need malloc and locks that
// the crash may have broken; a child forked at crash time would inherit them too.
#pragma once

#include <string>
#include <string_view>

#include "ramjet/result.h"
#include "telemetry/flow_board.h"

namespace ramjet::app::crash {

// argv[1] that selects reporter_main (run_app checks it before parsing options).
inline constexpr std::string_view kReporterFlag = "--crash-reporter";

struct Identity {
  std::string app;      // e.g. "ramjetd 0.1.0"
  std::string config;   // the config file's path
  std::string sha256;   // hex SHA-256 of its bytes
};

// Starts the reporter and installs the handlers. `dir` is created if missing; when it
// cannot be, or is "", reports go to the log only (returned as a warning to log). Call
// before any other thread exists. Without a reporter (it failed to start) the report has
// everything but the stacks.
Result<void> install(const std::string& dir, const Identity& identity);

// Worker `index`'s flows appear in reports from now on. Call on that worker's thread when
// it starts (it also gets an alternate signal stack there, so a stack overflow is reported).
void watch_worker(unsigned index, const telemetry::FlowBoard* board);
// Its flows no longer appear (its board is about to go away).
void unwatch_worker(unsigned index);

// The reporter process: argv after the flag (the daemon's pid). Returns the exit code.
int reporter_main(int argc, char** argv);

}  // namespace ramjet::app::crash
