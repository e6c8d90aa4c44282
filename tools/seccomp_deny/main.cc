// ramjet-seccomp-deny: runs a command under a seccomp filter that fails the named
// system calls with EPERM, as a container runtime's default profile does for
// io_uring. Tests use it to start ramjetd where io_uring is unavailable without
// touching the host-global kernel.io_uring_disabled sysctl.
//
//   ramjet-seccomp-deny io_uring_setup[,io_uring_enter,...] -- COMMAND [ARGS...]
#include <linux/audit.h>
#include <linux/filter.h>
#include <linux/seccomp.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <cerrno>
#include <cstddef>
#include <cstdio>
#include <cstring>
#include <map>
#include <sstream>
#include <string>
#include <vector>

namespace {

#if defined(__x86_64__)
constexpr unsigned kArch = AUDIT_ARCH_X86_64;
#elif defined(__aarch64__)
constexpr unsigned kArch = AUDIT_ARCH_AARCH64;
#else
#error "add this architecture's AUDIT_ARCH_*"
#endif

const std::map<std::string, long> kSyscalls = {
    {"io_uring_setup", __NR_io_uring_setup},
    {"io_uring_enter", __NR_io_uring_enter},
    {"io_uring_register", __NR_io_uring_register},
};

int usage() {
  std::fprintf(stderr, "usage: ramjet-seccomp-deny SYSCALL[,SYSCALL...] -- COMMAND [ARGS...]\n");
  std::fprintf(stderr, "known system calls:");
  for (const auto& [name, nr] : kSyscalls) std::fprintf(stderr, " %s", name.c_str());
  std::fprintf(stderr, "\n");
  return 2;
}

sock_filter stmt(unsigned short code, unsigned k) {
  return sock_filter{code, 0, 0, k};
}

sock_filter jump(unsigned short code, unsigned k, unsigned char jt, unsigned char jf) {
  return sock_filter{code, jt, jf, k};
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 4 || std::strcmp(argv[2], "--") != 0) return usage();
  std::vector<long> denied;
  std::stringstream names(argv[1]);
  for (std::string name; std::getline(names, name, ',');) {
    auto it = kSyscalls.find(name);
    if (it == kSyscalls.end()) {
      std::fprintf(stderr, "ramjet-seccomp-deny: unknown system call %s\n", name.c_str());
      return usage();
    }
    denied.push_back(it->second);
  }

  // Other architectures' calls are allowed: this is a test tool, not a sandbox.
  std::vector<sock_filter> prog = {
      stmt(BPF_LD | BPF_W | BPF_ABS, offsetof(seccomp_data, arch)),
      jump(BPF_JMP | BPF_JEQ | BPF_K, kArch, 1, 0),
      stmt(BPF_RET | BPF_K, SECCOMP_RET_ALLOW),
      stmt(BPF_LD | BPF_W | BPF_ABS, offsetof(seccomp_data, nr)),
  };
  for (long nr : denied) {
    prog.push_back(jump(BPF_JMP | BPF_JEQ | BPF_K, static_cast<unsigned>(nr), 0, 1));
    prog.push_back(stmt(BPF_RET | BPF_K, SECCOMP_RET_ERRNO | (EPERM & SECCOMP_RET_DATA)));
  }
  prog.push_back(stmt(BPF_RET | BPF_K, SECCOMP_RET_ALLOW));
  sock_fprog fprog{static_cast<unsigned short>(prog.size()), prog.data()};

  // Without no_new_privs only CAP_SYS_ADMIN may install a filter; with it, anyone.
  if (::prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0 ||
      ::prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, &fprog) != 0) {
    std::fprintf(stderr, "ramjet-seccomp-deny: cannot install the filter: %s\n", strerror(errno));
    return 1;
  }
  ::execvp(argv[3], argv + 3);
  std::fprintf(stderr, "ramjet-seccomp-deny: cannot run %s: %s\n", argv[3], strerror(errno));
  return 127;
}
