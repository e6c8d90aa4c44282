#include "datapath/netlink.h"

#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <vector>

namespace ramjet::datapath::netlink {

namespace {

// A NETLINK_ROUTE socket, closed on scope exit.
class Socket {
 public:
  Socket() : fd_(::socket(AF_NETLINK, SOCK_RAW | SOCK_CLOEXEC, NETLINK_ROUTE)) {}
  ~Socket() {
    if (fd_ >= 0) ::close(fd_);
  }
  Socket(const Socket&) = delete;
  Socket& operator=(const Socket&) = delete;
  int fd() const { return fd_; }

  int send(Request& req) {
    sockaddr_nl sa{};
    sa.nl_family = AF_NETLINK;
    if (::sendto(fd_, req.hdr(), req.hdr()->nlmsg_len, 0, reinterpret_cast<sockaddr*>(&sa),
                 sizeof sa) < 0)
      return -errno;
    return 0;
  }

 private:
  int fd_;
};

}  // namespace

Request::Request(std::uint16_t type, std::uint16_t flags) {
  hdr()->nlmsg_type = type;
  hdr()->nlmsg_flags = static_cast<std::uint16_t>(NLM_F_REQUEST | flags);
  hdr()->nlmsg_len = NLMSG_LENGTH(0);
  hdr()->nlmsg_seq = 1;
}

void Request::attr(std::uint16_t type, const void* data, std::size_t len) {
  auto* a = reinterpret_cast<rtattr*>(buf_ + NLMSG_ALIGN(hdr()->nlmsg_len));
  a->rta_type = type;
  a->rta_len = static_cast<unsigned short>(RTA_LENGTH(len));
  std::memcpy(RTA_DATA(a), data, len);
  hdr()->nlmsg_len = NLMSG_ALIGN(hdr()->nlmsg_len) + RTA_ALIGN(a->rta_len);
}

int transact(Request& req) {
  Socket sock;
  if (sock.fd() < 0) return -errno;
  req.hdr()->nlmsg_flags |= NLM_F_ACK;
  if (int rc = sock.send(req); rc != 0) return rc;
  alignas(nlmsghdr) char reply[1024];
  ssize_t n = ::recv(sock.fd(), reply, sizeof reply, 0);
  if (n < 0) return -errno;
  auto* h = reinterpret_cast<nlmsghdr*>(reply);
  if (NLMSG_OK(h, static_cast<unsigned>(n)) && h->nlmsg_type == NLMSG_ERROR)
    return reinterpret_cast<nlmsgerr*>(NLMSG_DATA(h))->error;
  return 0;
}

int dump(Request& req, const std::function<void(const nlmsghdr&)>& fn) {
  Socket sock;
  if (sock.fd() < 0) return -errno;
  int on = 1;
  // Kernels before 4.20 lack it and dump everything: the caller filters anyway.
  (void)::setsockopt(sock.fd(), SOL_NETLINK, NETLINK_GET_STRICT_CHK, &on, sizeof on);
  req.hdr()->nlmsg_flags |= NLM_F_DUMP;
  if (int rc = sock.send(req); rc != 0) return rc;
  std::vector<char> buf(64 * 1024);
  for (;;) {
    ssize_t n = ::recv(sock.fd(), buf.data(), buf.size(), 0);
    if (n < 0) {
      if (errno == EINTR) continue;
      return -errno;
    }
    if (n == 0) return -EIO;
    auto len = static_cast<unsigned>(n);
    for (auto* h = reinterpret_cast<nlmsghdr*>(buf.data()); NLMSG_OK(h, len);
         h = NLMSG_NEXT(h, len)) {
      if (h->nlmsg_seq != req.hdr()->nlmsg_seq) continue;
      if (h->nlmsg_type == NLMSG_DONE) return 0;
      if (h->nlmsg_type == NLMSG_ERROR) {
        int err = reinterpret_cast<const nlmsgerr*>(NLMSG_DATA(h))->error;
        if (err != 0) return err;
        continue;
      }
      fn(*h);
    }
  }
}

Attributes::Attributes(const nlmsghdr& msg, std::size_t header_len) {
  std::size_t offset = NLMSG_LENGTH(header_len);
  if (msg.nlmsg_len < offset) return;
  const auto* base = reinterpret_cast<const std::uint8_t*>(&msg);
  const auto* a = reinterpret_cast<const rtattr*>(base + NLMSG_ALIGN(offset));
  auto left = static_cast<unsigned>(msg.nlmsg_len - NLMSG_ALIGN(offset));
  for (; RTA_OK(a, left); a = RTA_NEXT(a, left)) {
    std::size_t type = a->rta_type & NLA_TYPE_MASK;
    if (type >= kMaxType) continue;
    table_[type] = {static_cast<const std::uint8_t*>(RTA_DATA(a)), RTA_PAYLOAD(a)};
    present_[type] = true;
  }
}

std::optional<std::span<const std::uint8_t>> Attributes::get(std::uint16_t type) const {
  if (type >= kMaxType || !present_[type]) return std::nullopt;
  return table_[type];
}

std::optional<std::uint32_t> Attributes::u32(std::uint16_t type) const {
  auto a = get(type);
  if (!a || a->size() < sizeof(std::uint32_t)) return std::nullopt;
  std::uint32_t v;
  std::memcpy(&v, a->data(), sizeof v);
  return v;
}

std::optional<std::uint8_t> Attributes::u8(std::uint16_t type) const {
  auto a = get(type);
  if (!a || a->empty()) return std::nullopt;
  return (*a)[0];
}

}  // namespace ramjet::datapath::netlink
