#include "app/crash_report.h"

#include <cxxabi.h>
#include <elfutils/libdwfl.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <spdlog/spdlog.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <memory>
#include <string>

namespace ramjet::app::crash {

namespace {

constexpr int kSignals[] = {SIGSEGV, SIGBUS, SIGFPE, SIGILL, SIGABRT};
constexpr unsigned kMaxWorkers = 256;
// How long the handler waits for the reporter's stacks.
constexpr int kReporterTimeoutMs = 10'000;
constexpr std::size_t kAltStackSize = 64 * 1024;
constexpr int kMaxFrames = 64;
// Flow ids listed per worker (the rest are counted).
constexpr std::size_t kMaxFlowsListed = 100;

// Everything the handler reads, set up by install() before any other thread exists.
struct State {
  char dir[512] = {};
  char identity[2048] = {};  // "app: ...\nconfig: ... sha256 ...\n"
  int to_reporter = -1;      // write end of the reporter's command pipe
  int from_reporter = -1;    // read end of its answers
  std::atomic<const telemetry::FlowBoard*> boards[kMaxWorkers] = {};
  std::atomic<long> reporting_tid{0};
};
State g_state;

// A fixed buffer written with async-signal-safe appends only.
class Text {
 public:
  void add(const char* s) { add(s, std::strlen(s)); }
  void add(const char* s, std::size_t n) {
    if (n > sizeof(buf_) - len_) n = sizeof(buf_) - len_;
    std::memcpy(buf_ + len_, s, n);
    len_ += n;
  }
  void add_uint(unsigned long long v, unsigned base = 10) {
    char tmp[24];
    int i = 0;
    do {
      tmp[i++] = "0123456789abcdef"[v % base];
      v /= base;
    } while (v != 0);
    while (i > 0) add(&tmp[--i], 1);
  }
  void add_hex(unsigned long long v) {
    add("0x");
    add_uint(v, 16);
  }
  const char* data() const { return buf_; }
  std::size_t size() const { return len_; }
  void clear() { len_ = 0; }

 private:
  char buf_[8192];
  std::size_t len_ = 0;
};

void write_all(int fd, const char* p, std::size_t n) {
  while (n > 0) {
    ssize_t w = ::write(fd, p, n);
    if (w < 0 && errno == EINTR) continue;
    if (w <= 0) return;
    p += w;
    n -= static_cast<std::size_t>(w);
  }
}

const char* signal_name(int sig) {
  switch (sig) {
    case SIGSEGV: return "SIGSEGV";
    case SIGBUS: return "SIGBUS";
    case SIGFPE: return "SIGFPE";
    case SIGILL: return "SIGILL";
    case SIGABRT: return "SIGABRT";
  }
  return "signal";
}

long now_ms_monotonic() {
  timespec ts{};
  ::clock_gettime(CLOCK_MONOTONIC, &ts);
  return ts.tv_sec * 1000L + ts.tv_nsec / 1'000'000L;
}

// Asks the reporter for the stacks and waits for its answer (or the timeout).
bool request_stacks(long tid, const char* path) {
  if (g_state.to_reporter < 0) return false;
  Text cmd;
  cmd.add_uint(static_cast<unsigned long long>(tid));
  cmd.add(" ");
  cmd.add(path);
  cmd.add("\n");
  write_all(g_state.to_reporter, cmd.data(), cmd.size());
  const long deadline = now_ms_monotonic() + kReporterTimeoutMs;
  for (;;) {
    const long left = deadline - now_ms_monotonic();
    if (left <= 0) return false;
    pollfd p{g_state.from_reporter, POLLIN, 0};
    int r = ::poll(&p, 1, static_cast<int>(left));
    if (r < 0 && errno == EINTR) continue;  // the reporter's ptrace stops interrupt us
    if (r <= 0) return false;
    char ack;
    ssize_t n = ::read(g_state.from_reporter, &ack, 1);
    if (n < 0 && errno == EINTR) continue;
    return n == 1;
  }
}

void on_crash(int sig, siginfo_t* info, void*) {
  const long tid = ::syscall(SYS_gettid);
  long expected = 0;
  if (!g_state.reporting_tid.compare_exchange_strong(expected, tid)) {
    // Another thread is writing the report: wait for it to end the process. The same
    // thread faulting again inside the handler goes straight to the default action.
    if (expected != tid)
      for (;;) ::pause();
    ::signal(sig, SIG_DFL);
    ::raise(sig);
    return;
  }

  timespec wall{};
  ::clock_gettime(CLOCK_REALTIME, &wall);
  char comm[17] = {};
  ::prctl(PR_GET_NAME, comm, 0, 0, 0);

  Text path;
  if (g_state.dir[0] != '\0') {
    path.add(g_state.dir);
    path.add("/crash-");
    path.add_uint(static_cast<unsigned long long>(wall.tv_sec));
    path.add("-");
    path.add_uint(static_cast<unsigned long long>(::getpid()));
    path.add(".txt");
  }
  path.add("\0", 1);
  int file = -1;
  if (g_state.dir[0] != '\0')
    file = ::open(path.data(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_APPEND, 0600);

  Text t;
  t.add("==== ramjet crash report ====\n");
  t.add("signal: ");
  t.add(signal_name(sig));
  t.add(" (");
  t.add_uint(static_cast<unsigned>(sig));
  t.add(") code ");
  t.add_uint(static_cast<unsigned>(info != nullptr ? info->si_code : 0));
  if (sig != SIGABRT && info != nullptr) {
    t.add(" address ");
    t.add_hex(reinterpret_cast<unsigned long long>(info->si_addr));
  }
  t.add("\nthread: ");
  t.add_uint(static_cast<unsigned long long>(tid));
  t.add(" (");
  t.add(comm);
  t.add(")\npid: ");
  t.add_uint(static_cast<unsigned long long>(::getpid()));
  t.add("\ntime: ");
  t.add_uint(static_cast<unsigned long long>(wall.tv_sec));
  t.add(" (unix seconds)\n");
  t.add(g_state.identity);
  t.add("flows by worker:\n");
  for (unsigned w = 0; w < kMaxWorkers; ++w) {
    const telemetry::FlowBoard* board = g_state.boards[w].load(std::memory_order_acquire);
    if (board == nullptr) continue;
    t.add("  worker ");
    t.add_uint(w);
    t.add(":");
    std::size_t named = 0;
    for (std::size_t i = 0; i < telemetry::FlowBoard::kSlots; ++i) {
      const std::uint64_t id = board->id_at(i);
      if (id == 0) continue;
      if (named++ < kMaxFlowsListed) {
        t.add(" ");
        t.add_uint(id);
      }
    }
    if (named == 0) t.add(" none");
    if (named > kMaxFlowsListed) {
      t.add(" (");
      t.add_uint(named - kMaxFlowsListed);
      t.add(" more)");
    }
    if (board->unnamed() != 0) {
      t.add(" (and ");
      t.add_uint(board->unnamed());
      t.add(" not on the board)");
    }
    t.add("\n");
  }
  if (file >= 0) {
    t.add("report: ");
    t.add(path.data());
    t.add("\n");
  }
  write_all(2, t.data(), t.size());
  if (file >= 0) write_all(file, t.data(), t.size());

  const bool stacks = request_stacks(tid, file >= 0 ? path.data() : "-");
  t.clear();
  if (!stacks) t.add("stacks: the reporter did not answer (see above for what it said)\n");
  t.add("==== end of crash report ====\n");
  write_all(2, t.data(), t.size());
  if (file >= 0) {
    write_all(file, t.data(), t.size());
    ::close(file);
  }
  // SA_RESETHAND restored the default action; the signal is blocked until we return,
  // then it ends the process (a core dump where enabled). A fault re-faults on return.
  ::raise(sig);
}

void give_thread_an_alt_stack() {
#if defined(__SANITIZE_ADDRESS__)
  // ASan keeps its own alternate stack per thread and unmaps it at thread exit: ours
  // would be what it finds there ("failed to deallocate"), and crash reports are off.
  return;
#endif
  // Leaked on purpose: a thread's alternate stack lives as long as the thread.
  void* mem = std::malloc(kAltStackSize);
  if (mem == nullptr) return;
  stack_t ss{};
  ss.ss_sp = mem;
  ss.ss_size = kAltStackSize;
  if (::sigaltstack(&ss, nullptr) != 0) std::free(mem);
}

std::string demangle(const char* name) {
  int status = 0;
  std::unique_ptr<char, decltype(&std::free)> d(abi::__cxa_demangle(name, nullptr, nullptr, &status),
                                                &std::free);
  return status == 0 && d ? std::string(d.get()) : std::string(name);
}

struct Unwind {
  Dwfl* dwfl = nullptr;
  long crashed_tid = 0;
  std::string out;
  int frames = 0;
};

int on_frame(Dwfl_Frame* frame, void* arg) {
  auto& u = *static_cast<Unwind*>(arg);
  Dwarf_Addr pc = 0;
  bool activation = false;
  if (!dwfl_frame_pc(frame, &pc, &activation)) return DWARF_CB_ABORT;
  // A return address points after the call: look up the call itself.
  const Dwarf_Addr at = activation ? pc : pc - 1;
  char line[1024];
  std::string where;
  Dwfl_Module* mod = dwfl_addrmodule(u.dwfl, at);
  if (mod != nullptr) {
    if (const char* fn = dwfl_module_addrname(mod, at)) where = demangle(fn);
    if (Dwfl_Line* src = dwfl_module_getsrc(mod, at)) {
      int lineno = 0;
      if (const char* file = dwfl_lineinfo(src, nullptr, &lineno, nullptr, nullptr, nullptr))
        where += std::string(" at ") + file + ":" + std::to_string(lineno);
    }
    const char* modname = dwfl_module_info(mod, nullptr, nullptr, nullptr, nullptr, nullptr,
                                           nullptr, nullptr);
    if (modname != nullptr) where += std::string(" [") + modname + "]";
  }
  std::snprintf(line, sizeof(line), "  #%-2d 0x%016llx %s\n", u.frames,
                static_cast<unsigned long long>(pc), where.empty() ? "??" : where.c_str());
  u.out += line;
  return ++u.frames >= kMaxFrames ? DWARF_CB_ABORT : DWARF_CB_OK;
}

int on_thread(Dwfl_Thread* thread, void* arg) {
  auto& u = *static_cast<Unwind*>(arg);
  const pid_t tid = dwfl_thread_tid(thread);
  std::string comm;
  std::ifstream in(std::string("/proc/") + std::to_string(dwfl_pid(u.dwfl)) + "/task/" +
                   std::to_string(tid) + "/comm");
  std::getline(in, comm);
  u.out += "thread " + std::to_string(tid) + " (" + comm + ")" +
           (tid == u.crashed_tid ? " crashed" : "") + ":\n";
  u.frames = 0;
  if (dwfl_thread_getframes(thread, on_frame, &u) != 0 && u.frames == 0)
    u.out += std::string("  (no frames: ") + dwfl_errmsg(-1) + ")\n";
  return DWARF_CB_OK;
}

// Every thread's stack, symbolized; or why not.
std::string stacks_of(pid_t pid, long crashed_tid) {
  static char* debuginfo_path = nullptr;
  static const Dwfl_Callbacks callbacks = {
      .find_elf = dwfl_linux_proc_find_elf,
      .find_debuginfo = dwfl_standard_find_debuginfo,
      .section_address = nullptr,
      .debuginfo_path = &debuginfo_path,
  };
  Unwind u;
  u.crashed_tid = crashed_tid;
  u.dwfl = dwfl_begin(&callbacks);
  if (u.dwfl == nullptr) return std::string("stacks: libdw: ") + dwfl_errmsg(-1) + "\n";
  std::string out;
  if (dwfl_linux_proc_report(u.dwfl, pid) != 0 || dwfl_report_end(u.dwfl, nullptr, nullptr) != 0) {
    out = std::string("stacks: cannot read the modules of pid ") + std::to_string(pid) + ": " +
          dwfl_errmsg(-1) + "\n";
  } else if (dwfl_linux_proc_attach(u.dwfl, pid, false) != 0) {
    out = std::string("stacks: cannot attach to pid ") + std::to_string(pid) + ": " +
          dwfl_errmsg(-1) + "\n";
  } else {
    u.out = "stacks (every thread, innermost frame first):\n";
    dwfl_getthreads(u.dwfl, on_thread, &u);
    out = std::move(u.out);
  }
  dwfl_end(u.dwfl);  // detaches: the daemon's threads run on into the default action
  return out;
}

}  // namespace

Result<void> install(const std::string& dir, const Identity& identity) {
#if defined(__SANITIZE_ADDRESS__)
  // The sanitizer's own SEGV report says more about a memory error than ours would.
  (void)dir;
  (void)identity;
  return Error::config("crash reports are off in sanitizer builds (the sanitizer reports)");
#endif
  std::string warning;
  if (!dir.empty()) {
    std::error_code ec;
    std::filesystem::create_directories(dir, ec);
    if (ec || ::access(dir.c_str(), W_OK) != 0) {
      warning = "server.crash_dir " + dir + " is not writable (" +
                (ec ? ec.message() : std::string(std::strerror(errno))) +
                "): crash reports go to the log only";
    } else if (dir.size() < sizeof(g_state.dir)) {
      std::memcpy(g_state.dir, dir.data(), dir.size());
    }
  }
  const std::string id = "app: " + identity.app + "\nconfig: " + identity.config + " sha256 " +
                         identity.sha256 + "\n";
  std::memcpy(g_state.identity, id.data(), std::min(id.size(), sizeof(g_state.identity) - 1));

  // The reporter: this binary again, fed by a pipe; it ends when the pipe closes.
  int cmd[2];
  int ack[2];
  if (::pipe2(cmd, O_CLOEXEC) != 0) return Error::kernel(errno, "crash reporter: pipe");
  if (::pipe2(ack, O_CLOEXEC) != 0) {
    ::close(cmd[0]);
    ::close(cmd[1]);
    return Error::kernel(errno, "crash reporter: pipe");
  }
  const std::string pid = std::to_string(::getpid());
  const pid_t child = ::fork();
  if (child < 0) return Error::kernel(errno, "crash reporter: fork");
  if (child == 0) {
    // Only async-signal-safe calls until exec.
    ::dup2(cmd[0], 0);
    ::dup2(ack[1], 3);
    const char* argv[] = {"ramjet-crashrep", kReporterFlag.data(), pid.c_str(), nullptr};
    ::execv("/proc/self/exe", const_cast<char* const*>(argv));
    ::_exit(127);
  }
  ::close(cmd[0]);
  ::close(ack[1]);
  g_state.to_reporter = cmd[1];
  g_state.from_reporter = ack[0];
  // Yama's ptrace_scope=1 lets only a declared tracer attach to us.
  ::prctl(PR_SET_PTRACER, child, 0, 0, 0);

  give_thread_an_alt_stack();
  struct sigaction sa {};
  sa.sa_sigaction = on_crash;
  sa.sa_flags = SA_SIGINFO | SA_ONSTACK | SA_RESETHAND;
  sigemptyset(&sa.sa_mask);
  for (int sig : kSignals) ::sigaction(sig, &sa, nullptr);
  if (!warning.empty()) return Error::config(warning);
  return {};
}

void watch_worker(unsigned index, const telemetry::FlowBoard* board) {
  give_thread_an_alt_stack();
  if (index < kMaxWorkers) g_state.boards[index].store(board, std::memory_order_release);
}

void unwatch_worker(unsigned index) {
  if (index < kMaxWorkers) g_state.boards[index].store(nullptr, std::memory_order_release);
}

int reporter_main(int argc, char** argv) {
  if (argc < 1) return 2;
  const pid_t daemon = static_cast<pid_t>(std::atol(argv[0]));
  ::prctl(PR_SET_NAME, "ramjet-crashrep", 0, 0, 0);
  // Ignore the terminal's signals: the daemon's end (the pipe closing) ends us.
  ::signal(SIGINT, SIG_IGN);
  ::signal(SIGHUP, SIG_IGN);
  std::string line;
  char c;
  for (;;) {
    ssize_t n = ::read(0, &c, 1);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return 0;  // the daemon exited: nothing to report
    if (c != '\n') {
      line += c;
      continue;
    }
    const auto space = line.find(' ');
    const long tid = std::atol(line.substr(0, space).c_str());
    const std::string path = space == std::string::npos ? "-" : line.substr(space + 1);
    const std::string stacks = stacks_of(daemon, tid);
    write_all(2, stacks.data(), stacks.size());
    if (path != "-") {
      int fd = ::open(path.c_str(), O_WRONLY | O_APPEND | O_CLOEXEC);
      if (fd >= 0) {
        write_all(fd, stacks.data(), stacks.size());
        ::close(fd);
      }
    }
    write_all(3, "k", 1);
    return 0;
  }
}

}  // namespace ramjet::app::crash
