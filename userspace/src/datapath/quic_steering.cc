#include "datapath/quic_steering.h"

#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include <sys/socket.h>

#include <cerrno>
#include <cstring>
#include <string>
#include <vector>

#include "quic_reuseport.skel.h"

namespace ramjet::datapath {

Result<std::unique_ptr<QuicSteering>> QuicSteering::load() {
  std::unique_ptr<QuicSteering> s(new QuicSteering());
  s->skel_ = quic_reuseport__open_and_load();
  if (s->skel_ == nullptr) {
    const int err = errno != 0 ? errno : EINVAL;
    return Error::kernel(err, std::string("QUIC steering: cannot load the BPF program: ") +
                                  std::strerror(err) +
                                  (err == EPERM ? " (it needs CAP_BPF and CAP_NET_ADMIN)" : ""));
  }
  return s;
}

QuicSteering::~QuicSteering() {
  if (skel_ != nullptr) quic_reuseport__destroy(skel_);
}

Result<void> QuicSteering::attach(std::span<const int> sockets) {
  if (sockets.size() > RAMJET_QUIC_MAX_WORKERS)
    return Error::config("QUIC steering: more than " + std::to_string(RAMJET_QUIC_MAX_WORKERS) +
                         " workers");
  const int map = bpf_map__fd(skel_->maps.quic_sockets);
  for (std::size_t w = 0; w < sockets.size(); ++w) {
    const std::uint32_t key = static_cast<std::uint32_t>(w);
    const std::uint64_t value = static_cast<std::uint64_t>(sockets[w]);
    if (bpf_map_update_elem(map, &key, &value, BPF_ANY) != 0)
      return Error::kernel(errno, "QUIC steering: socket of worker " + std::to_string(w) + ": " +
                                      std::strerror(errno));
  }
  // The program belongs to the group: setting it on one socket sets it for all.
  const int prog = bpf_program__fd(skel_->progs.quic_select);
  if (!sockets.empty() &&
      ::setsockopt(sockets[0], SOL_SOCKET, SO_ATTACH_REUSEPORT_EBPF, &prog, sizeof prog) != 0)
    return Error::kernel(errno, std::string("QUIC steering: SO_ATTACH_REUSEPORT_EBPF: ") +
                                    std::strerror(errno));
  return {};
}

std::array<std::uint64_t, RAMJET_QUIC_STAT_COUNT> QuicSteering::stats() const {
  std::array<std::uint64_t, RAMJET_QUIC_STAT_COUNT> out{};
  const int ncpu = libbpf_num_possible_cpus();
  if (ncpu <= 0) return out;
  std::vector<std::uint64_t> per_cpu(static_cast<std::size_t>(ncpu));
  const int map = bpf_map__fd(skel_->maps.quic_stats);
  for (std::uint32_t k = 0; k < RAMJET_QUIC_STAT_COUNT; ++k) {
    if (bpf_map_lookup_elem(map, &k, per_cpu.data()) != 0) continue;
    for (std::uint64_t v : per_cpu) out[k] += v;
  }
  return out;
}

}  // namespace ramjet::datapath
