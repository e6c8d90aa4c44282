#include "datapath/tun_handoff.h"

#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include <arpa/inet.h>
#include <fcntl.h>
#include <linux/inet_diag.h>
#include <linux/netlink.h>
#include <linux/sock_diag.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <string>

#include "datapath/links.h"
#include "datapath/sysctl.h"
#include "ramjet/abi/meta.h"
#include "tun_handoff.skel.h"

namespace ramjet::datapath {

Result<std::unique_ptr<TunHandoff>> TunHandoff::load(std::uint32_t mark) {
  std::unique_ptr<TunHandoff> h(new TunHandoff());
  h->skel_ = tun_handoff__open();
  int err = h->skel_ == nullptr ? errno : 0;
  if (h->skel_ != nullptr) {
    h->skel_->rodata->handoff_mark = mark;
    err = -tun_handoff__load(h->skel_);
  }
  if (err != 0) {
    return Error::kernel(err, std::string("TUN hand-off: cannot load the BPF program: ") +
                                  std::strerror(err) +
                                  (err == EPERM ? " (ip endpoints need CAP_BPF and CAP_NET_ADMIN)"
                                                : ""));
  }
  return h;
}

Result<int> TunHandoff::disable_early_demux(std::uint8_t protocol) {
  const char* path = protocol == IPPROTO_UDP ? "/proc/sys/net/ipv4/udp_early_demux"
                                             : "/proc/sys/net/ipv4/tcp_early_demux";
  int before = read_sysctl(path);
  if (before < 0) return Error::kernel(-before, std::string("read ") + path);
  if (before == 0) return 0;
  if (int e = write_sysctl(path, "0"); e != 0)
    return Error::kernel(-e, std::string("write ") + path + ": " + std::strerror(-e));
  restore_.emplace_back(path, before);
  return before;
}

TunHandoff::~TunHandoff() {
  for (const auto& [path, before] : restore_)
    (void)write_sysctl(path, std::to_string(before).c_str());
  for (int fd : links_) ::close(fd);
  if (skel_ != nullptr) tun_handoff__destroy(skel_);
}

Result<void> TunHandoff::attach(const std::string& ifname, unsigned ifindex) {
  int fd = bpf_link_create(bpf_program__fd(skel_->progs.tun_handoff), static_cast<int>(ifindex),
                           static_cast<bpf_attach_type>(kTcxIngress), nullptr);
  if (fd < 0) {
    int err = errno;
    return Error::kernel(err, "TUN hand-off: cannot attach to " + ifname + " (tcx ingress): " +
                                  std::strerror(err));
  }
  links_.push_back(fd);
  return {};
}

Result<void> TunHandoff::add_socket(std::uint32_t endpoint_id, int fd, bool v6) {
  std::uint32_t slot = RAMJET_LISTENER_SLOT(endpoint_id, v6);
  std::uint64_t value = static_cast<std::uint64_t>(fd);
  if (bpf_map_update_elem(bpf_map__fd(skel_->maps.handoff_sockets), &slot, &value, BPF_ANY) != 0) {
    int err = errno;
    return Error::kernel(err, std::string("TUN hand-off: cannot add a listener to the sockmap: ") +
                                  std::strerror(err));
  }
  return {};
}

int TunHandoff::flows_fd() const { return bpf_map__fd(skel_->maps.handoff_flows); }

int TunHandoff::add_flow(int flows_fd, const ramjet_handoff_key& key, std::uint32_t endpoint_id,
                         std::uint64_t flow_id) {
  ramjet_handoff_target target{};
  target.slot = RAMJET_LISTENER_SLOT(endpoint_id, key.family == RAMJET_FAMILY_IPV6);
  target.flow_id = flow_id;
  return bpf_map_update_elem(flows_fd, &key, &target, BPF_ANY) == 0 ? 0 : -errno;
}

std::uint64_t TunHandoff::flow_of(int flows_fd, const ramjet_handoff_key& key) {
  ramjet_handoff_target target{};
  return bpf_map_lookup_elem(flows_fd, &key, &target) == 0 ? target.flow_id : 0;
}

ramjet_handoff_key TunHandoff::key_of(std::uint8_t protocol, const SocketAddress& client,
                                      const SocketAddress& local) {
  ramjet_handoff_key k{};
  IpAddress src = client.ip().unmapped();
  IpAddress dst = local.ip().unmapped();
  k.family = src.is_v6() ? RAMJET_FAMILY_IPV6 : RAMJET_FAMILY_IPV4;
  k.proto = protocol;
  std::memcpy(k.saddr, src.data(), src.size());
  std::memcpy(k.daddr, dst.data(), dst.size());
  k.sport = htons(client.port());
  k.dport = htons(local.port());
  return k;
}

void TunHandoff::remove_flow(int flows_fd, const ramjet_handoff_key& key) {
  (void)bpf_map_delete_elem(flows_fd, &key);
}

std::array<std::uint64_t, RAMJET_HANDOFF_STAT_COUNT> TunHandoff::stats() const {
  std::array<std::uint64_t, RAMJET_HANDOFF_STAT_COUNT> out{};
  int cpus = libbpf_num_possible_cpus();
  if (cpus <= 0) return out;
  std::vector<std::uint64_t> per_cpu(static_cast<std::size_t>(cpus));
  for (std::uint32_t i = 0; i < RAMJET_HANDOFF_STAT_COUNT; ++i) {
    if (bpf_map_lookup_elem(bpf_map__fd(skel_->maps.handoff_stats), &i, per_cpu.data()) != 0)
      continue;
    for (std::uint64_t n : per_cpu) out[i] += n;
  }
  return out;
}

const char* TunHandoff::stat_name(unsigned stat) {
  switch (stat) {
#define RAMJET_X_CASE(name, value) \
  case value:                      \
    return #name;
    RAMJET_HANDOFF_STATS(RAMJET_X_CASE)
#undef RAMJET_X_CASE
  }
  return "UNKNOWN";
}

int TunHandoff::end_time_wait(const SocketAddress& client, const SocketAddress& local) {
  // One socket per thread (each worker's IP on-ramp calls from its own), kept open.
  thread_local int fd = ::socket(AF_NETLINK, SOCK_DGRAM | SOCK_CLOEXEC, NETLINK_SOCK_DIAG);
  if (fd < 0) return -errno;
  struct {
    nlmsghdr hdr;
    inet_diag_req_v2 req;
  } msg{};
  msg.hdr.nlmsg_len = sizeof msg;
  msg.hdr.nlmsg_type = SOCK_DESTROY;
  msg.hdr.nlmsg_flags = NLM_F_REQUEST | NLM_F_ACK;
  msg.req.sdiag_family = static_cast<std::uint8_t>(local.family());
  msg.req.sdiag_protocol = IPPROTO_TCP;
  msg.req.idiag_states = 1u << TCP_TIME_WAIT;
  msg.req.id.idiag_sport = htons(local.port());
  msg.req.id.idiag_dport = htons(client.port());
  std::memcpy(msg.req.id.idiag_src, local.ip().data(), local.ip().size());
  std::memcpy(msg.req.id.idiag_dst, client.ip().data(), client.ip().size());
  msg.req.id.idiag_cookie[0] = msg.req.id.idiag_cookie[1] = INET_DIAG_NOCOOKIE;
  sockaddr_nl kernel{};
  kernel.nl_family = AF_NETLINK;
  if (::sendto(fd, &msg, sizeof msg, 0, reinterpret_cast<sockaddr*>(&kernel), sizeof kernel) < 0)
    return -errno;
  alignas(nlmsghdr) char answer[256];
  const ssize_t n = ::recv(fd, answer, sizeof answer, 0);
  if (n < static_cast<ssize_t>(NLMSG_LENGTH(sizeof(nlmsgerr)))) return n < 0 ? -errno : -EPROTO;
  const auto* hdr = reinterpret_cast<const nlmsghdr*>(answer);
  if (hdr->nlmsg_type != NLMSG_ERROR) return -EPROTO;
  return reinterpret_cast<const nlmsgerr*>(NLMSG_DATA(hdr))->error;
}

}  // namespace ramjet::datapath
