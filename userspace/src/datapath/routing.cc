#include "datapath/routing.h"

#include <linux/fib_rules.h>
#include <linux/netlink.h>
#include <linux/rtnetlink.h>
#include <net/if.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <string>

namespace ramjet::datapath {

namespace {

// One netlink request: header, family-specific body, attributes.
class Request {
 public:
  Request(std::uint16_t type, std::uint16_t flags) {
    hdr()->nlmsg_type = type;
    hdr()->nlmsg_flags = static_cast<std::uint16_t>(NLM_F_REQUEST | NLM_F_ACK | flags);
    hdr()->nlmsg_len = NLMSG_LENGTH(0);
    hdr()->nlmsg_seq = 1;
  }
  template <typename T>
  T* body() {
    hdr()->nlmsg_len = NLMSG_LENGTH(sizeof(T));
    return reinterpret_cast<T*>(NLMSG_DATA(hdr()));
  }
  void attr_u32(std::uint16_t type, std::uint32_t value) {
    auto* a = reinterpret_cast<rtattr*>(buf_ + NLMSG_ALIGN(hdr()->nlmsg_len));
    a->rta_type = type;
    a->rta_len = RTA_LENGTH(sizeof value);
    std::memcpy(RTA_DATA(a), &value, sizeof value);
    hdr()->nlmsg_len = NLMSG_ALIGN(hdr()->nlmsg_len) + RTA_ALIGN(a->rta_len);
  }
  nlmsghdr* hdr() { return reinterpret_cast<nlmsghdr*>(buf_); }

 private:
  alignas(nlmsghdr) char buf_[512] = {};
};

// Sends one request, returns 0 or -errno from the kernel's ack.
int transact(Request& req) {
  int fd = ::socket(AF_NETLINK, SOCK_RAW | SOCK_CLOEXEC, NETLINK_ROUTE);
  if (fd < 0) return -errno;
  sockaddr_nl sa{};
  sa.nl_family = AF_NETLINK;
  int rc = 0;
  if (::sendto(fd, req.hdr(), req.hdr()->nlmsg_len, 0, reinterpret_cast<sockaddr*>(&sa),
               sizeof sa) < 0) {
    rc = -errno;
  } else {
    alignas(nlmsghdr) char reply[1024];
    ssize_t n = ::recv(fd, reply, sizeof reply, 0);
    if (n < 0) {
      rc = -errno;
    } else {
      auto* h = reinterpret_cast<nlmsghdr*>(reply);
      if (NLMSG_OK(h, static_cast<unsigned>(n)) && h->nlmsg_type == NLMSG_ERROR)
        rc = reinterpret_cast<nlmsgerr*>(NLMSG_DATA(h))->error;
    }
  }
  ::close(fd);
  return rc;
}

int rule(bool add, int family, const PolicyRoute& r) {
  Request req(add ? RTM_NEWRULE : RTM_DELRULE, add ? NLM_F_CREATE | NLM_F_EXCL : 0);
  auto* f = req.body<fib_rule_hdr>();
  f->family = static_cast<std::uint8_t>(family);
  f->action = FR_ACT_TO_TBL;
  f->table = RT_TABLE_UNSPEC;
  req.attr_u32(FRA_FWMARK, r.mark);
  req.attr_u32(FRA_FWMASK, 0xffffffffu);
  req.attr_u32(FRA_TABLE, r.table);
  req.attr_u32(FRA_PRIORITY, r.priority ? r.priority : r.mark % 30000 + 100);
  return transact(req);
}

int route(bool add, int family, const PolicyRoute& r) {
  Request req(add ? RTM_NEWROUTE : RTM_DELROUTE, add ? NLM_F_CREATE | NLM_F_EXCL : 0);
  auto* rt = req.body<rtmsg>();
  rt->rtm_family = static_cast<std::uint8_t>(family);
  rt->rtm_dst_len = 0;
  rt->rtm_table = RT_TABLE_UNSPEC;
  rt->rtm_protocol = RTPROT_STATIC;
  rt->rtm_scope = RT_SCOPE_HOST;
  rt->rtm_type = RTN_LOCAL;
  req.attr_u32(RTA_TABLE, r.table);
  req.attr_u32(RTA_OIF, ::if_nametoindex("lo"));
  return transact(req);
}

}  // namespace

Result<void> install_policy_route(const PolicyRoute& r) {
  for (int family : {AF_INET, AF_INET6}) {
    const char* fam = family == AF_INET ? "IPv4" : "IPv6";
    int rc = route(true, family, r);
    if (rc != 0 && rc != -EEXIST)
      return Error::kernel(-rc, std::string("cannot add the ") + fam + " local route to table " +
                                    std::to_string(r.table) + ": " + strerror(-rc) +
                                    (rc == -EPERM ? " (needs CAP_NET_ADMIN)" : ""));
    rc = rule(true, family, r);
    if (rc != 0 && rc != -EEXIST)
      return Error::kernel(-rc, std::string("cannot add the ") + fam + " fwmark rule: " +
                                    strerror(-rc));
  }
  return {};
}

void remove_policy_route(const PolicyRoute& r) {
  for (int family : {AF_INET, AF_INET6}) {
    rule(false, family, r);
    route(false, family, r);
  }
}

}  // namespace ramjet::datapath
