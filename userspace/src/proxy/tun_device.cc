#include "proxy/tun_device.h"

#include <fcntl.h>
#include <linux/fib_rules.h>
#include <linux/if.h>
#include <linux/if_addr.h>
#include <linux/if_tun.h>
#include <linux/rtnetlink.h>
#include <netinet/in.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <spdlog/spdlog.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <optional>
#include <string_view>
#include <utility>

#include "datapath/netlink.h"
#include "datapath/routing.h"
#include "datapath/sysctl.h"

namespace ramjet::proxy {

namespace nl = datapath::netlink;
using datapath::read_sysctl;
using datapath::write_sysctl;

namespace {

std::string errno_text(int err) { return std::strerror(err < 0 ? -err : err); }

int family_of(const IpAddress& a) { return a.is_v4() ? AF_INET : AF_INET6; }

// `ip rule add not fwmark MARK/MARK lookup TABLE pref PRIORITY proto 82`, or its del.
int rule(int family, std::uint16_t type, const config::TunSettings& t) {
  nl::Request req(type, type == RTM_NEWRULE ? NLM_F_CREATE | NLM_F_EXCL : 0);
  auto* r = req.body<fib_rule_hdr>();
  r->family = static_cast<std::uint8_t>(family);
  r->action = FR_ACT_TO_TBL;
  r->flags = FIB_RULE_INVERT;
  r->table = RT_TABLE_UNSPEC;
  req.attr_u32(FRA_TABLE, t.route_table);
  req.attr_u32(FRA_PRIORITY, t.rule_priority);
  req.attr_u32(FRA_FWMARK, t.bypass_mark);
  req.attr_u32(FRA_FWMASK, t.bypass_mark);
  req.attr_u8(FRA_PROTOCOL, datapath::kRouteProtocol);
  return nl::transact(req);
}

// `ip rule add iif DEVICE fwmark MARK/MARK lookup HANDOFF_TABLE pref PRIORITY proto 82`,
// or its del: the packets ramjetd writes back into the device (decapsulated flows), once
// the hand-off program has marked them, are for this host. Not on the device alone: the
// kernel checks the source of a packet it forwards into the device with a lookup "from"
// the device, which that rule would answer "local" (a martian source: every forwarded
// packet dropped); that lookup carries no mark.
int handoff_rule(int family, std::uint16_t type, const config::TunSettings& t) {
  nl::Request req(type, type == RTM_NEWRULE ? NLM_F_CREATE | NLM_F_EXCL : 0);
  auto* r = req.body<fib_rule_hdr>();
  r->family = static_cast<std::uint8_t>(family);
  r->action = FR_ACT_TO_TBL;
  r->table = RT_TABLE_UNSPEC;
  req.attr_u32(FRA_TABLE, t.handoff_table);
  req.attr_u32(FRA_PRIORITY, t.rule_priority);
  req.attr(FRA_IIFNAME, t.name.c_str(), t.name.size() + 1);
  req.attr_u32(FRA_FWMARK, t.bypass_mark);
  req.attr_u32(FRA_FWMASK, t.bypass_mark);
  req.attr_u8(FRA_PROTOCOL, datapath::kRouteProtocol);
  return nl::transact(req);
}

int add_route(const Cidr& dst, unsigned ifindex, std::uint32_t table) {
  nl::Request req(RTM_NEWROUTE, NLM_F_CREATE | NLM_F_REPLACE);
  auto* r = req.body<rtmsg>();
  r->rtm_family = static_cast<std::uint8_t>(family_of(dst.base()));
  r->rtm_dst_len = dst.prefix_len();
  r->rtm_table = RT_TABLE_UNSPEC;
  r->rtm_protocol = datapath::kRouteProtocol;
  r->rtm_scope = RT_SCOPE_LINK;
  r->rtm_type = RTN_UNICAST;
  req.attr_u32(RTA_TABLE, table);
  req.attr(RTA_DST, dst.base().data(), dst.base().size());
  req.attr_u32(RTA_OIF, ifindex);
  return nl::transact(req);
}

int add_address(const IpAddress& a, std::uint8_t prefix, unsigned ifindex) {
  nl::Request req(RTM_NEWADDR, NLM_F_CREATE | NLM_F_REPLACE);
  auto* m = req.body<ifaddrmsg>();
  m->ifa_family = static_cast<std::uint8_t>(family_of(a));
  m->ifa_prefixlen = prefix;
  m->ifa_index = ifindex;
  m->ifa_flags = a.is_v6() ? IFA_F_NODAD : 0;
  req.attr(IFA_LOCAL, a.data(), a.size());
  req.attr(IFA_ADDRESS, a.data(), a.size());
  return nl::transact(req);
}

// Another process that holds a queue of the TUN device `name` of this network
// namespace: a multi-queue TUN takes every process that asks, and the kernel would
// spread the flows over both, so a second daemon (another instance, a copied config)
// must not attach. A /dev/net/tun descriptor's fdinfo names its device ("iff:\t<name>").
struct TunHolder {
  pid_t pid;
  std::string comm;
};
std::optional<TunHolder> tun_holder(const std::string& name) {
  {
    // No device of that name in this namespace: nobody holds it.
    int sock = ::socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    ifreq ifr{};
    std::strncpy(ifr.ifr_name, name.c_str(), IFNAMSIZ - 1);
    const bool exists = sock >= 0 && ::ioctl(sock, SIOCGIFINDEX, &ifr) == 0;
    if (sock >= 0) ::close(sock);
    if (!exists) return std::nullopt;
  }
  namespace fs = std::filesystem;
  struct stat own_ns{};
  if (::stat("/proc/self/ns/net", &own_ns) != 0) return std::nullopt;
  const std::string self = std::to_string(::getpid());
  const std::string wanted = "iff:\t" + name;
  std::error_code ec;
  for (const fs::directory_entry& proc : fs::directory_iterator("/proc", ec)) {
    const std::string pid = proc.path().filename();
    if (pid.empty() || pid.find_first_not_of("0123456789") != std::string::npos || pid == self)
      continue;
    // The same name in another namespace is another device.
    struct stat ns{};
    if (::stat((proc.path() / "ns/net").c_str(), &ns) != 0 || ns.st_ino != own_ns.st_ino ||
        ns.st_dev != own_ns.st_dev)
      continue;
    std::error_code fd_ec;
    for (const fs::directory_entry& fd : fs::directory_iterator(proc.path() / "fd", fd_ec)) {
      std::error_code link_ec;
      if (fs::read_symlink(fd.path(), link_ec) != "/dev/net/tun") continue;
      std::ifstream info(proc.path() / "fdinfo" / fd.path().filename());
      for (std::string line; std::getline(info, line);) {
        if (line != wanted) continue;
        std::string comm;
        std::getline(std::ifstream(proc.path() / "comm"), comm);
        return TunHolder{static_cast<pid_t>(std::stol(pid)), comm};
      }
    }
  }
  return std::nullopt;
}

}  // namespace

Result<TunDevice> TunDevice::create(const config::TunSettings& tun, unsigned queues) {
  // The workers open their off-ramp sockets later; one that cannot (no CAP_NET_RAW)
  // would forward nothing, so find out here, where start-up can still fail.
  for (int family : {AF_INET, AF_INET6}) {
    int fd = open_ip_offramp(family, tun.bypass_mark);
    if (fd < 0)
      return Error::kernel(-fd, std::string("IP off-ramp (raw ") +
                                    (family == AF_INET ? "IPv4" : "IPv6") + " socket): " +
                                    errno_text(fd) +
                                    (fd == -EPERM ? " (ip endpoints need CAP_NET_RAW)" : ""));
    ::close(fd);
  }
  if (auto holder = tun_holder(tun.name))
    return Error::kernel(EBUSY, "TUN device " + tun.name + " is in use by pid " +
                                    std::to_string(holder->pid) + " (" + holder->comm +
                                    "): another daemon or program holds it; give this "
                                    "endpoint another tun.name");
  TunDevice dev(tun);
  for (unsigned i = 0; i < queues; ++i) {
    int fd = ::open("/dev/net/tun", O_RDWR | O_CLOEXEC | O_NONBLOCK);
    if (fd < 0) {
      int err = errno;
      return Error::kernel(err, "open /dev/net/tun: " + errno_text(err) +
                                    (err == ENOENT ? " (modprobe tun)" : ""));
    }
    ifreq ifr{};
    ifr.ifr_flags = IFF_TUN | IFF_NO_PI | IFF_MULTI_QUEUE;
    std::strncpy(ifr.ifr_name, tun.name.c_str(), IFNAMSIZ - 1);
    if (::ioctl(fd, TUNSETIFF, &ifr) != 0) {
      int err = errno;
      ::close(fd);
      std::string why = "TUNSETIFF " + tun.name + ": " + errno_text(err);
      if (err == EBUSY || err == EINVAL)
        why += " (a device of that name exists and is not a multi-queue TUN ramjetd may attach to)";
      if (err == EPERM) why += " (IP endpoints need CAP_NET_ADMIN)";
      return Error::kernel(err, why);
    }
    dev.queues_.push_back(fd);
  }
  {
    int sock = ::socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    ifreq ifr{};
    std::strncpy(ifr.ifr_name, tun.name.c_str(), IFNAMSIZ - 1);
    int rc = sock < 0 ? -1 : ::ioctl(sock, SIOCGIFINDEX, &ifr);
    int err = errno;
    if (sock >= 0) ::close(sock);
    if (rc != 0) return Error::kernel(err, "SIOCGIFINDEX " + tun.name + ": " + errno_text(err));
    dev.ifindex_ = static_cast<unsigned>(ifr.ifr_ifindex);
  }
  if (auto r = dev.set_up(); !r.ok()) return r.error();
  return dev;
}

Result<void> TunDevice::set_up() {
  const auto& t = settings_;
  // Before the link comes up: no IPv6 link-local address and no router solicitations,
  // or the kernel's own multicast (RS, MLD) would be the first "flows" in the device.
  for (const char* key : {"addr_gen_mode", "router_solicitations", "accept_ra"})
    write_sysctl("/proc/sys/net/ipv6/conf/" + t.name + "/" + key,
                 std::string_view(key) == "addr_gen_mode" ? "1" : "0");
  // Decapsulated packets come back in through the device with their client's source
  // address, which is routed elsewhere: no reverse-path check on the device (the
  // kernel applies the larger of `all` and the device's value; start() warns when
  // `all` is strict).
  write_sysctl("/proc/sys/net/ipv4/conf/" + t.name + "/rp_filter", "0");
  if (read_sysctl("/proc/sys/net/ipv4/conf/all/rp_filter") == 1)
    spdlog::warn(
        "{}: net.ipv4.conf.all.rp_filter is 1 (strict): decapsulated IPv4 flows are dropped "
        "by the reverse-path check; set it to 2 (loose) or 0 to decapsulate",
        t.name);
  int sock = ::socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
  if (sock < 0) return Error::kernel(errno, "socket");
  ifreq ifr{};
  std::strncpy(ifr.ifr_name, t.name.c_str(), IFNAMSIZ - 1);
  ifr.ifr_mtu = static_cast<int>(t.mtu);
  int rc = ::ioctl(sock, SIOCSIFMTU, &ifr);
  int err = errno;
  if (rc == 0) {
    rc = ::ioctl(sock, SIOCGIFFLAGS, &ifr);
    err = errno;
    if (rc == 0) {
      ifr.ifr_flags = static_cast<short>(ifr.ifr_flags | IFF_UP);
      rc = ::ioctl(sock, SIOCSIFFLAGS, &ifr);
      err = errno;
    }
  }
  ::close(sock);
  if (rc != 0) return Error::kernel(err, t.name + ": mtu/up: " + errno_text(err));
  for (const auto& text : t.addresses) {
    auto slash = text.find('/');
    auto ip = IpAddress::parse(text.substr(0, slash));
    auto cidr = Cidr::parse(text);  // validated by the config already
    if (!ip || !cidr) return Error::config("tun.addresses: " + text);
    if (int e = add_address(*ip, cidr->prefix_len(), ifindex_); e != 0)
      return Error::kernel(-e, t.name + ": address " + text + ": " + errno_text(e));
  }
  bool family_used[2] = {false, false};
  for (const Cidr& route : t.routes) {
    family_used[route.base().is_v6()] = true;
    if (int e = add_route(route, ifindex_, t.route_table); e != 0)
      return Error::kernel(-e, t.name + ": route " + route.to_string() + " table " +
                                   std::to_string(t.route_table) + ": " + errno_text(e));
  }
  for (int v6 = 0; v6 < 2; ++v6) {
    if (!family_used[v6]) continue;
    int family = v6 ? AF_INET6 : AF_INET;
    // A crashed run's rules are ours (the same protocol, mark and table): replace them.
    // The hand-off rule first: at the same preference, it then comes before the other.
    (void)rule(family, RTM_DELRULE, t);
    (void)handoff_rule(family, RTM_DELRULE, t);
    // Every destination local, for the packets the hand-off rule sends to the table;
    // held (and let go by the destructor) apart from the rules, so that a rule refused
    // below does not leave it behind, and counted, as ip endpoints may share the table.
    if (auto r = datapath::acquire_local_default(family, t.handoff_table); !r.ok()) {
      Error e = r.error();
      e.message = t.name + ": " + e.message;
      return e;
    }
    local_default_[v6] = true;
    if (int e = handoff_rule(family, RTM_NEWRULE, t); e != 0)
      return Error::kernel(-e, t.name + ": rule iif " + t.name + " fwmark " +
                                   std::to_string(t.bypass_mark) + " lookup " +
                                   std::to_string(t.handoff_table) + ": " + errno_text(e));
    rules_[v6] = true;
    if (int e = rule(family, RTM_NEWRULE, t); e != 0)
      return Error::kernel(-e, t.name + ": rule not fwmark " + std::to_string(t.bypass_mark) +
                                   " lookup " + std::to_string(t.route_table) + ": " +
                                   errno_text(e));
    rules_[v6] = true;
  }
  return {};
}

TunDevice::TunDevice(TunDevice&& o) noexcept
    : settings_(std::move(o.settings_)), queues_(std::move(o.queues_)), ifindex_(o.ifindex_) {
  for (int v6 = 0; v6 < 2; ++v6) {
    rules_[v6] = std::exchange(o.rules_[v6], false);
    local_default_[v6] = std::exchange(o.local_default_[v6], false);
  }
  o.queues_.clear();
}

TunDevice::~TunDevice() {
  for (int v6 = 0; v6 < 2; ++v6) {
    int family = v6 ? AF_INET6 : AF_INET;
    if (rules_[v6]) {
      (void)rule(family, RTM_DELRULE, settings_);
      (void)handoff_rule(family, RTM_DELRULE, settings_);
    }
    // After the rule that leads to it; gone with the last ip endpoint that uses it.
    if (local_default_[v6]) datapath::release_local_default(family, settings_.handoff_table);
  }
  for (int fd : queues_)
    if (fd >= 0) ::close(fd);
}

int TunDevice::take_queue(unsigned i) {
  if (i >= queues_.size()) return -1;
  int fd = queues_[i];
  queues_[i] = -1;
  return fd;
}

int open_ip_offramp(int family, std::uint32_t mark) {
  // IPPROTO_RAW: the packet is sent as given, its own IP header included (IPv4: the
  // kernel fills in the header checksum and the total length; IPv6: IPV6_HDRINCL).
  int fd = ::socket(family, SOCK_RAW | SOCK_CLOEXEC | SOCK_NONBLOCK, IPPROTO_RAW);
  if (fd < 0) return -errno;
  if (::setsockopt(fd, SOL_SOCKET, SO_MARK, &mark, sizeof mark) != 0) {
    int err = errno;
    ::close(fd);
    return -err;
  }
  return fd;
}

}  // namespace ramjet::proxy
