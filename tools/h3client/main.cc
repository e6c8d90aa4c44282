// ramjet-h3client: an HTTP/3 client for ramjet's integration tests. It sends one request,
// or opens one CONNECT tunnel, over QUIC (ngtcp2 + GnuTLS, nghttp3) - what no client
// packaged for Debian 12 does: request trailers, CONNECT (RFC 9114 4.4). Its load mode
// is the HTTP/3 load generator of bench/h3.py (Debian's h2load has no HTTP/3).
//
//   ramjet-h3client --connect HOST:PORT [--sni NAME] [--ca FILE | --insecure]
//                   [--timeout SECONDS] MODE ...
//   request METHOD URL [-H 'name: value']... [--body-file FILE] [--trailer 'name: value']...
//           [--stop-reading-after BYTES]
//   tunnel AUTHORITY [-H 'name: value']... [--protocol NAME [--path PATH]
//          [--datagrams [--send-capsules] [--raw-datagram HEX]...]]
//   load URL --connections M --requests N [--concurrency C] [-H 'name: value']...
//
// Response body bytes go to stdout as they are. The response head goes to stderr as one
// JSON line, {"status":200,"headers":[["name","value"],...]} with "trailers" added in
// request mode: there once the response is complete, in tunnel mode as soon as the
// head arrives (a 2xx then relays stdin -> stream and stream -> stdout, and ends our
// side at stdin's EOF).
//
// --datagrams (connect-udp, RFC 9298): HTTP/3 datagrams in QUIC DATAGRAM frames (RFC 9297
// 2.1). The client offers max_datagram_frame_size and SETTINGS_H3_DATAGRAM = 1; when the
// server offered both, the DATAGRAM capsules written to stdin go out as DATAGRAM frames
// and the server's DATAGRAM frames come out on stdout as DATAGRAM capsules (stdin and
// stdout are framed as without the flag). Otherwise it says so on stderr and uses
// capsules on the stream. --send-capsules keeps stdin's capsules on the stream (only the
// server's datagrams come in frames); --raw-datagram sends a DATAGRAM frame payload as it
// is (hex: Quarter Stream ID, Context ID, payload) once the tunnel is up; both for tests.
//
// load: M connections at once, N GET requests of URL spread over them as they free up,
// at most C (default 1, like `h2load -m1`) in flight per connection and never more than
// the server's MAX_STREAMS allow; bodies are read and dropped. One JSON line on stdout:
// {"requests_ok":N,"requests_failed":0,"seconds":1.23,"status_2xx":N,"body_bytes":...}
// (requests_ok: complete responses, whatever their status); exit 0 only when every
// request got a 2xx, else 1, with the first connection failure on stderr.
//
// Exit status: 0 done (tunnel: both directions ended); 1 stream reset or connection
// error, with a line such as "h3client: stream reset by the server: H3_CONNECT_ERROR
// (0x10f)" on stderr; 2 handshake failure or timeout (--timeout, fractions allowed, is
// the handshake's deadline, then QUIC's idle timeout); 3 tunnel refused (non-2xx, its
// body on stdout); 64 bad arguments. The certificate is verified against --ca (else the
// system's store) and --sni, which defaults to HOST (not sent when an IP literal).
#include <fcntl.h>
#include <signal.h>
#include <unistd.h>

#include <CLI/CLI.hpp>
#include <algorithm>
#include <cctype>
#include <cerrno>
#include <cstring>
#include <iostream>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <string_view>

#include "h3_client.h"

namespace {

using namespace ramjet::h3client;

constexpr int kExitDone = 0;
constexpr int kExitStreamError = 1;
constexpr int kExitHandshakeError = 2;
constexpr int kExitTunnelRefused = 3;
constexpr int kExitUsage = 64;

std::string_view trim(std::string_view s) {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t')) s.remove_suffix(1);
  return s;
}

// "Name: value" -> {"name", "value"}; a pseudo-header field (":protocol: x") too.
std::optional<Field> parse_field(std::string_view text) {
  const std::size_t colon = text.find(':', text.starts_with(':') ? 1 : 0);
  if (colon == std::string_view::npos) return std::nullopt;
  std::string name(trim(text.substr(0, colon)));
  if (name.empty() || name == ":") return std::nullopt;
  std::transform(name.begin(), name.end(), name.begin(),
                 [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
  return Field{std::move(name), std::string(trim(text.substr(colon + 1)))};
}

bool add_fields(const std::vector<std::string>& texts, const char* option, Fields& out) {
  for (const std::string& t : texts) {
    std::optional<Field> f = parse_field(t);
    if (!f) {
      std::cerr << "h3client: " << option << " \"" << t << "\" is not 'name: value'\n";
      return false;
    }
    out.push_back(std::move(*f));
  }
  return true;
}

// "https://authority/path?query" -> the request's :scheme, :authority and :path.
struct Target {
  std::string scheme;
  std::string authority;
  std::string path;
};

std::optional<Target> parse_url(std::string_view url) {
  const std::size_t sep = url.find("://");
  if (sep == std::string_view::npos || sep == 0) return std::nullopt;
  Target t{std::string(url.substr(0, sep)), "", ""};
  std::string_view rest = url.substr(sep + 3);
  rest = rest.substr(0, rest.find('#'));
  const std::size_t end = rest.find_first_of("/?");
  t.authority = rest.substr(0, end);
  if (t.authority.empty()) return std::nullopt;
  t.path = end == std::string_view::npos ? "/" : std::string(rest.substr(end));
  if (t.path.front() == '?') t.path.insert(0, "/");
  return t;
}

// "00ff10" -> {0x00, 0xff, 0x10}.
std::optional<std::vector<std::uint8_t>> parse_hex(std::string_view text) {
  if (text.size() % 2 != 0) return std::nullopt;
  std::vector<std::uint8_t> out;
  for (std::size_t i = 0; i < text.size(); i += 2) {
    unsigned value = 0;
    for (char c : text.substr(i, 2)) {
      const int digit = std::isdigit(static_cast<unsigned char>(c)) ? c - '0'
                        : (c >= 'a' && c <= 'f')                    ? c - 'a' + 10
                        : (c >= 'A' && c <= 'F')                    ? c - 'A' + 10
                                                                    : -1;
      if (digit < 0) return std::nullopt;
      value = value * 16 + static_cast<unsigned>(digit);
    }
    out.push_back(static_cast<std::uint8_t>(value));
  }
  return out;
}

// "host:port" or "[v6]:port".
bool parse_host_port(const std::string& text, ConnectOptions& out) {
  const std::size_t colon = text.rfind(':');
  if (colon == std::string::npos || colon == 0 || colon + 1 == text.size()) return false;
  std::string host = text.substr(0, colon);
  if (host.front() == '[') {
    if (host.size() < 3 || host.back() != ']') return false;
    host = host.substr(1, host.size() - 2);
  }
  out.host = host;
  out.port = text.substr(colon + 1);
  return true;
}

std::string head_line(int status, const Fields& headers, const Fields* trailers) {
  auto pairs = [](const Fields& fields) {
    nlohmann::ordered_json a = nlohmann::ordered_json::array();
    for (const Field& f : fields) a.push_back({f.name, f.value});
    return a;
  };
  nlohmann::ordered_json line = {{"status", status}, {"headers", pairs(headers)}};
  if (trailers != nullptr) line["trailers"] = pairs(*trailers);
  return line.dump(-1, ' ', false, nlohmann::ordered_json::error_handler_t::replace);
}

// Body bytes to stdout; the head to stderr when the mode wants it.
class Output : public ResponseHandler {
 public:
  explicit Output(ExchangeKind kind) : kind_(kind) {}

  void on_head(int status, const Fields& fields) override {
    status_ = status;
    headers_ = fields;
    if (kind_ == ExchangeKind::kTunnel) std::cerr << head_line(status_, headers_, nullptr) << "\n";
  }
  bool on_body(std::span<const std::uint8_t> data) override {
    while (!data.empty()) {
      const ssize_t n = write(STDOUT_FILENO, data.data(), data.size());
      if (n < 0 && errno == EINTR) continue;
      if (n <= 0) return false;
      data = data.subspan(static_cast<std::size_t>(n));
    }
    return true;
  }
  void on_trailers(const Fields& fields) override { trailers_ = fields; }

  int status() const { return status_; }
  void print_complete() const { std::cerr << head_line(status_, headers_, &trailers_) << "\n"; }

 private:
  ExchangeKind kind_;
  int status_ = 0;
  Fields headers_;
  Fields trailers_;
};

// Pseudo-header fields before the others (RFC 9114 4.3), each group in the given order.
void pseudo_first(Fields& fields) {
  std::stable_partition(fields.begin(), fields.end(),
                        [](const Field& f) { return f.name.starts_with(':'); });
}

// The load mode's tally as one JSON line on stdout.
int run_load_mode(const ConnectOptions& options, const Request& request, const LoadOptions& load) {
  const LoadResult r = run_load(options, request, load);
  const nlohmann::ordered_json line = {{"requests_ok", r.requests_ok},
                                       {"requests_failed", r.requests_failed},
                                       {"seconds", r.seconds},
                                       {"status_2xx", r.status_2xx},
                                       {"body_bytes", r.body_bytes}};
  std::cout << line.dump() << std::endl;
  if (!r.first_error.empty()) std::cerr << "h3client: " << r.first_error << "\n";
  return r.status_2xx == load.requests ? kExitDone : kExitStreamError;
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"ramjet-h3client: one HTTP/3 request or CONNECT tunnel, for ramjet's tests",
               "ramjet-h3client"};
  app.require_subcommand(1);
  app.fallthrough();  // the connection's options may also follow MODE
  std::string connect;
  std::string sni;
  std::string ca;
  bool insecure = false;
  double timeout_s = 10;
  app.add_option("--connect", connect, "Where the server listens: HOST:PORT ([v6]:PORT)")
      ->required();
  app.add_option("--sni", sni, "TLS server name to send and verify (default: HOST)");
  auto* ca_opt = app.add_option("--ca", ca, "Trust the CA certificates in this PEM file")
                     ->check(CLI::ExistingFile);
  auto* insecure_opt = app.add_flag("--insecure", insecure, "Do not verify the certificate");
  ca_opt->excludes(insecure_opt);
  app.add_option("--timeout", timeout_s, "Handshake deadline and idle timeout, in seconds")
      ->check(CLI::PositiveNumber)
      ->capture_default_str();

  std::string method;
  std::string url;
  std::vector<std::string> request_headers;
  std::string body_file;
  std::vector<std::string> trailer_texts;
  CLI::App* request_cmd = app.add_subcommand("request", "Send one request");
  request_cmd->add_option("method", method, "Request method")->required();
  request_cmd->add_option("url", url, "https://authority/path: :scheme, :authority, :path")
      ->required();
  request_cmd->add_option("-H,--header", request_headers, "A request field 'name: value'")
      ->allow_extra_args(false);
  request_cmd->add_option("--body-file", body_file, "The request body")->check(CLI::ExistingFile);
  request_cmd->add_option("--trailer", trailer_texts, "A request trailer field 'name: value'")
      ->allow_extra_args(false);
  std::uint64_t stop_reading_after = UINT64_MAX;
  request_cmd->add_option("--stop-reading-after", stop_reading_after,
                          "Cancel the response (STOP_SENDING) once this many body bytes came");

  std::string authority;
  std::string protocol;
  std::string path = "/";
  std::vector<std::string> tunnel_headers;
  CLI::App* tunnel_cmd =
      app.add_subcommand("tunnel", "CONNECT to AUTHORITY and relay stdin and stdout over it");
  tunnel_cmd->add_option("authority", authority, "host:port to CONNECT to")->required();
  auto* protocol_opt = tunnel_cmd->add_option(
      "--protocol", protocol, "Extended CONNECT (RFC 9220): this :protocol, :scheme https, --path");
  tunnel_cmd->add_option("--path", path, "The :path of an extended CONNECT")
      ->needs(protocol_opt)
      ->capture_default_str();
  tunnel_cmd->add_option("-H,--header", tunnel_headers, "A request field 'name: value'")
      ->allow_extra_args(false);
  bool datagrams = false;
  std::vector<std::string> raw_datagrams;
  auto* datagrams_opt = tunnel_cmd
                            ->add_flag("--datagrams", datagrams,
                                       "connect-udp: HTTP/3 datagrams in QUIC DATAGRAM frames "
                                       "(RFC 9297) when the server offers them")
                            ->needs(protocol_opt);
  bool send_capsules = false;
  tunnel_cmd
      ->add_flag("--send-capsules", send_capsules,
                 "With --datagrams: send stdin's capsules on the stream, receive in frames")
      ->needs(datagrams_opt);
  tunnel_cmd
      ->add_option("--raw-datagram", raw_datagrams,
                   "Send this DATAGRAM frame payload (hex) as it is once the tunnel is up")
      ->allow_extra_args(false)
      ->needs(datagrams_opt);

  std::string load_url;
  LoadOptions load;
  std::vector<std::string> load_headers;
  CLI::App* load_cmd = app.add_subcommand("load", "Send many GET requests over many connections");
  load_cmd->add_option("url", load_url, "https://authority/path: :scheme, :authority, :path")
      ->required();
  load_cmd->add_option("--connections", load.connections, "QUIC connections, opened at once")
      ->check(CLI::PositiveNumber)
      ->required();
  load_cmd->add_option("--requests", load.requests, "Requests over all connections together")
      ->check(CLI::PositiveNumber)
      ->required();
  load_cmd->add_option("--concurrency", load.concurrency, "Requests in flight per connection")
      ->check(CLI::PositiveNumber)
      ->capture_default_str();
  load_cmd->add_option("-H,--header", load_headers, "A request field 'name: value'")
      ->allow_extra_args(false);

  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    return app.exit(e) == 0 ? 0 : kExitUsage;
  }

  ConnectOptions options;
  if (!parse_host_port(connect, options)) {
    std::cerr << "h3client: --connect \"" << connect << "\" is not HOST:PORT\n";
    return kExitUsage;
  }
  options.sni = sni;
  options.ca_file = ca;
  options.insecure = insecure;
  options.timeout = std::chrono::milliseconds(static_cast<long>(timeout_s * 1000));

  Request request;
  if (load_cmd->parsed()) {
    const std::optional<Target> target = parse_url(load_url);
    if (!target) {
      std::cerr << "h3client: URL \"" << load_url << "\" is not scheme://authority/path\n";
      return kExitUsage;
    }
    request.fields = {{":method", "GET"},
                      {":scheme", target->scheme},
                      {":authority", target->authority},
                      {":path", target->path}};
    if (!add_fields(load_headers, "-H", request.fields)) return kExitUsage;
    pseudo_first(request.fields);
    return run_load_mode(options, request, load);
  }
  if (request_cmd->parsed()) {
    const std::optional<Target> target = parse_url(url);
    if (!target) {
      std::cerr << "h3client: URL \"" << url << "\" is not scheme://authority/path\n";
      return kExitUsage;
    }
    request.fields = {{":method", method},
                      {":scheme", target->scheme},
                      {":authority", target->authority},
                      {":path", target->path}};
    if (!add_fields(request_headers, "-H", request.fields) ||
        !add_fields(trailer_texts, "--trailer", request.trailers))
      return kExitUsage;
    request.stop_reading_after = stop_reading_after;
    if (!body_file.empty()) {
      request.body_fd = open(body_file.c_str(), O_RDONLY | O_CLOEXEC);
      if (request.body_fd < 0) {
        std::cerr << "h3client: --body-file " << body_file << ": " << std::strerror(errno) << "\n";
        return kExitUsage;
      }
    }
  } else {
    request.kind = ExchangeKind::kTunnel;
    request.fields = {{":method", "CONNECT"}, {":authority", authority}};
    if (!protocol.empty())
      request.fields.insert(request.fields.end(),
                            {{":protocol", protocol}, {":scheme", "https"}, {":path", path}});
    if (!add_fields(tunnel_headers, "-H", request.fields)) return kExitUsage;
    request.body_fd = STDIN_FILENO;
    request.datagrams = datagrams;
    request.send_capsules = send_capsules;
    for (const std::string& hex : raw_datagrams) {
      std::optional<std::vector<std::uint8_t>> bytes = parse_hex(hex);
      if (!bytes) {
        std::cerr << "h3client: --raw-datagram \"" << hex << "\" is not hex bytes\n";
        return kExitUsage;
      }
      request.raw_datagrams.push_back(std::move(*bytes));
    }
  }
  pseudo_first(request.fields);

  signal(SIGPIPE, SIG_IGN);  // a closed stdout is an error of write(), not a signal
  Output output(request.kind);
  const Result result = run_exchange(options, request, output);
  switch (result.outcome) {
    case Outcome::kDone:
      if (request.kind == ExchangeKind::kRequest) {
        output.print_complete();
        return kExitDone;
      }
      return output.status() / 100 == 2 ? kExitDone : kExitTunnelRefused;
    case Outcome::kStreamError:
    case Outcome::kConnectionError:
      std::cerr << "h3client: " << result.message << "\n";
      return kExitStreamError;
    case Outcome::kHandshakeError:
    case Outcome::kTimeout:
      std::cerr << "h3client: " << result.message << "\n";
      return kExitHandshakeError;
  }
  return kExitStreamError;
}
