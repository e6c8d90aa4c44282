// ramjetctl: the operator's CLI. This first cut talks to a running ramjetd over its
// admin socket (status, stats) and checks or prints configs without one.
//
// Exit codes: 0 success; 1 the daemon cannot be reached or answered an error;
// 2 bad usage or an invalid config file.
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <CLI/CLI.hpp>
#include <cerrno>
#include <cstring>
#include <iomanip>
#include <iostream>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>

#include "ramjet/config/config.h"
#include "ramjet/hooks/app.h"

namespace {

constexpr int kExitOk = 0;
constexpr int kExitDaemon = 1;
constexpr int kExitUsage = 2;

struct Reply {
  int status = 0;
  std::string body;
};

// One GET over the admin socket (HTTP/1.1, Connection: close, body to EOF).
std::optional<Reply> admin_get(const std::string& socket_path, const std::string& path,
                               std::string& error) {
  sockaddr_un sa{};
  sa.sun_family = AF_UNIX;
  if (socket_path.size() >= sizeof sa.sun_path) {
    error = "admin socket path too long: " + socket_path;
    return std::nullopt;
  }
  std::memcpy(sa.sun_path, socket_path.c_str(), socket_path.size() + 1);
  int fd = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0 || ::connect(fd, reinterpret_cast<sockaddr*>(&sa), sizeof sa) != 0) {
    int err = errno;
    if (fd >= 0) ::close(fd);
    if (err == ENOENT || err == ECONNREFUSED)
      error = "ramjetd is not running (nothing listens on " + socket_path + ")";
    else if (err == EACCES)
      error =
          "permission denied on " + socket_path + " (the admin socket is 0600: run as its owner)";
    else
      error = socket_path + ": " + std::strerror(err);
    return std::nullopt;
  }
  std::string req = "GET " + path + " HTTP/1.1\r\nHost: ramjet\r\nConnection: close\r\n\r\n";
  if (::send(fd, req.data(), req.size(), MSG_NOSIGNAL) != static_cast<ssize_t>(req.size())) {
    error = "cannot send to " + socket_path + ": " + std::strerror(errno);
    ::close(fd);
    return std::nullopt;
  }
  std::string raw;
  char buf[16384];
  ssize_t n;
  while ((n = ::recv(fd, buf, sizeof buf, 0)) > 0) raw.append(buf, static_cast<std::size_t>(n));
  ::close(fd);
  auto head_end = raw.find("\r\n\r\n");
  if (raw.compare(0, 9, "HTTP/1.1 ") != 0 || head_end == std::string::npos) {
    error = "malformed answer from " + socket_path;
    return std::nullopt;
  }
  return Reply{std::atoi(raw.c_str() + 9), raw.substr(head_end + 4)};
}

std::optional<nlohmann::json> admin_json(const std::string& socket_path, const std::string& path,
                                         int& exit_code) {
  std::string error;
  auto reply = admin_get(socket_path, path, error);
  if (!reply) {
    std::cerr << "ramjetctl: " << error << "\n";
    exit_code = kExitDaemon;
    return std::nullopt;
  }
  auto j = nlohmann::json::parse(reply->body, nullptr, /*allow_exceptions=*/false);
  if (reply->status != 200 || j.is_discarded()) {
    std::cerr << "ramjetctl: " << path << ": HTTP " << reply->status << ": " << reply->body << "\n";
    exit_code = kExitDaemon;
    return std::nullopt;
  }
  return j;
}

ramjet::config::AppSchema core_schema() {
  return {"ramjetd", ramjet::settings::ErasedStruct::of<ramjet::NoSettings>(),
          ramjet::settings::ErasedStruct::of<ramjet::NoSettings>()};
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App cli{"ramjetctl: manage a running ramjetd", "ramjetctl"};
  cli.require_subcommand(1);
  std::string socket_path = "/run/ramjet/admin.sock";
  bool json = false;
  cli.add_option("--admin-socket", socket_path, "The daemon's admin socket")
      ->envname("RAMJET_ADMIN_SOCKET");
  cli.add_flag("--json", json, "Print JSON instead of tables");

  auto* status = cli.add_subcommand("status", "The daemon: app, version, pid, workers, endpoints");
  auto* stats = cli.add_subcommand("stats", "Every engine counter, summed over workers");
  auto* config = cli.add_subcommand("config", "Check or print configuration");
  config->require_subcommand(1);
  std::string check_file;
  auto* check = config->add_subcommand("check", "Validate a config file (exit 0 or 2)");
  check->add_option("FILE", check_file, "The YAML file")->required();
  auto* def = config->add_subcommand("default", "Print the documented default config");

  try {
    cli.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    return cli.exit(e) == 0 ? kExitOk : kExitUsage;
  }

  int rc = kExitOk;
  if (*status) {
    auto j = admin_json(socket_path, "/v1/status", rc);
    if (!j) return rc;
    if (json) {
      std::cout << j->dump(2) << "\n";
      return kExitOk;
    }
    std::cout << (*j)["app"].get<std::string>() << " " << (*j)["version"].get<std::string>()
              << "  pid " << (*j)["pid"] << "  workers " << (*j)["workers"] << "\n";
    std::cout << "ENDPOINT            LISTEN\n";
    for (auto& [name, addr] : (*j)["endpoints"].items())
      std::cout << std::left << std::setw(20) << name << addr.get<std::string>() << "\n";
    return kExitOk;
  }
  if (*stats) {
    auto j = admin_json(socket_path, "/v1/stats", rc);
    if (!j) return rc;
    if (json) {
      std::cout << j->dump(2) << "\n";
      return kExitOk;
    }
    for (auto& [name, value] : (*j)["counters"].items())
      std::cout << std::left << std::setw(26) << name << value << "\n";
    return kExitOk;
  }
  if (*check) {
    auto c = ramjet::config::load_file(check_file, core_schema());
    if (!c.ok()) {
      std::cerr << c.error().message << "\n";
      return kExitUsage;
    }
    std::cout << check_file << ": ok\n";
    return kExitOk;
  }
  if (*def) {
    std::cout << ramjet::config::default_config_yaml(core_schema());
    return kExitOk;
  }
  return kExitUsage;
}
