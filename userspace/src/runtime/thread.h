// Threads whose failures are reported, never std::terminate.
//
// Every thread the engine starts runs its body through run_guarded: an exception
// that escapes is logged with the thread's name and handed to the process's
// failure handler (ramjetd's drains and exits 1). Worker threads are started with
// start_worker_thread, which creates the io_uring on the new thread (the ring
// belongs to the thread that submits) and returns its error to the caller before
// anything runs.
#pragma once

#include <functional>
#include <string>
#include <string_view>
#include <thread>

#include "ramjet/result.h"

namespace ramjet::runtime {

class Worker;

// Called after a thread's failure was logged, on the failed thread.
using ThreadFailureHandler = std::function<void(std::string_view thread, std::string_view what)>;
// Replaces the handler (default: none; the failure is only logged).
void set_thread_failure_handler(ThreadFailureHandler handler);

// Runs `body`, catching whatever escapes it.
void run_guarded(std::string_view name, const std::function<void()>& body) noexcept;

// Starts a thread that opens `worker`'s ring, then runs `body` (which calls
// worker.run()) through run_guarded. Returns once the ring exists, or with the
// reason it could not be created, in which case the thread has already ended.
Result<std::thread> start_worker_thread(Worker& worker, std::string name,
                                        std::function<void()> body);

}  // namespace ramjet::runtime
