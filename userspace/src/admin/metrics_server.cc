#include "admin/metrics_server.h"

#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

namespace ramjet::admin {

MetricsServer::MetricsServer(const telemetry::MetricsRegistry& registry) : registry_(registry) {
  router_.add("GET", "/metrics", [this](const HttpRequest&) {
    return HttpResponse{200, registry_.collect(), std::string(telemetry::kMetricsContentType)};
  });
}

MetricsServer::~MetricsServer() {
  stop();
}

Result<void> MetricsServer::start(const SocketAddress& listen) {
  auto fail = [&](int err) {
    return Error::kernel(err, "telemetry.metrics.listen: cannot listen on " + listen.to_string() +
                                  ": " + strerror(err));
  };
  int fd = ::socket(listen.family(), SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return fail(errno);
  int one = 1;
  // No SO_REUSEPORT: a second daemon on the same port must fail, not share scrapes.
  ::setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
  sockaddr_storage ss;
  socklen_t len = listen.to_sockaddr(ss);
  if (::bind(fd, reinterpret_cast<sockaddr*>(&ss), len) != 0 || ::listen(fd, 64) != 0) {
    int err = errno;
    ::close(fd);
    return fail(err);
  }
  len = sizeof ss;
  ::getsockname(fd, reinterpret_cast<sockaddr*>(&ss), &len);
  bound_ = SocketAddress::from_sockaddr(reinterpret_cast<sockaddr*>(&ss), len).value_or(listen);
  responder_ = std::make_unique<HttpResponder>(
      "metrics", [this](const HttpRequest& req) { return router_.dispatch(req); });
  return responder_->start(fd);
}

void MetricsServer::stop() {
  if (!responder_) return;
  responder_->stop();
  responder_.reset();
}

}  // namespace ramjet::admin
