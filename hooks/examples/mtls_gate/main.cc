// Example: an mTLS gate. The endpoint asks clients for certificates (tls.client_auth);
// IngressHook lets a connection in only when its verified certificate has a SAN that
// matches one of the patterns, and every request forwarded on it carries the
// certificate's subject to the upstream in a header.
//
//   endpoints:
//     - name: gate
//       listen: 127.0.0.1:8443
//       onramp: http
//       upstream: http://127.0.0.1:8080          # reverse proxy to the service
//       tls:
//         certificates: [{cert: certs/gate.pem, key: certs/gate.key}]
//         client_auth: {mode: required, ca: certs/clients-ca.pem}
//   app:
//     allowed_sans: ["URI:spiffe://example.test/team-a/*", "DNS:*.ops.example.test"]
//     subject_header: X-Client-Subject
#include <string>
#include <string_view>
#include <vector>

#include "ramjet/bootstrap.h"

namespace {

struct GateSettings {
  std::vector<std::string> allowed_sans;
  std::string subject_header = "X-Client-Subject";
  static void describe(ramjet::settings::Fields<GateSettings>& f) {
    f("allowed_sans", &GateSettings::allowed_sans,
      "SAN patterns (\"DNS:...\", \"URI:...\", \"IP:...\", \"email:...\"; * matches any run "
      "of characters) a client certificate must match one of.");
    f("subject_header", &GateSettings::subject_header,
      "Header that carries the certificate subject to the upstream.");
  }
};

// Glob match where '*' stands for any run of characters (including none).
bool glob(std::string_view pattern, std::string_view text) {
  std::size_t p = 0, t = 0, star = std::string_view::npos, mark = 0;
  while (t < text.size()) {
    if (p < pattern.size() && pattern[p] == '*') {
      star = p++;
      mark = t;
    } else if (p < pattern.size() && pattern[p] == text[t]) {
      ++p;
      ++t;
    } else if (star != std::string_view::npos) {
      p = star + 1;
      t = ++mark;
    } else {
      return false;
    }
  }
  while (p < pattern.size() && pattern[p] == '*') ++p;
  return p == pattern.size();
}

// Admits a connection by its client certificate.
class Gate final : public ramjet::IngressHook<ramjet::NoContext> {
 public:
  explicit Gate(GateSettings s) : s_(std::move(s)) {}

  ramjet::Task<ramjet::IngressDecision> handle_connection(const ramjet::ConnectionInfo& conn,
                                                          ramjet::NoContext&) override {
    if (!conn.tls || !conn.tls->client_certificate)
      co_return ramjet::IngressDecision::block("no client certificate");
    const ramjet::ClientCertificate& cert = *conn.tls->client_certificate;
    if (!cert.verified) co_return ramjet::IngressDecision::block("client certificate not verified");
    for (const std::string& san : cert.sans) {
      for (const std::string& pattern : s_.allowed_sans) {
        if (glob(pattern, san)) co_return ramjet::IngressDecision::allow();
      }
    }
    co_return ramjet::IngressDecision::block("no SAN of " + cert.subject + " is allowed");
  }

 private:
  GateSettings s_;
};

// Tells the upstream who the client is.
class SubjectHeader final : public ramjet::HttpRequestHook<ramjet::NoContext, ramjet::NoContext> {
 public:
  explicit SubjectHeader(std::string header) : header_(std::move(header)) {}

  ramjet::Task<ramjet::RequestDirective> handle_request(const ramjet::ConnectionInfo& conn,
                                                        ramjet::HttpRequestHead& req,
                                                        ramjet::NoContext&,
                                                        ramjet::NoContext&) override {
    // Never let a client send the header itself.
    req.headers.remove(header_);
    if (conn.tls && conn.tls->client_certificate)
      req.headers.add(header_, conn.tls->client_certificate->subject);
    co_return ramjet::RequestDirective::proceed();
  }

 private:
  std::string header_;
};

struct GateApp {
  static constexpr std::string_view name = "example-mtls-gate";
  static constexpr std::string_view version = "0.1.0";
  static constexpr std::string_view description =
      "ramjet example: admit clients by their certificate's SAN, pass the subject upstream";
  using Settings = GateSettings;

  static ramjet::Hooks<GateApp> start(const GateSettings& s) {
    ramjet::Hooks<GateApp> hooks;
    hooks.ingress = std::make_unique<Gate>(s);
    hooks.http = std::make_unique<SubjectHeader>(s.subject_header);
    return hooks;
  }
};

}  // namespace

int main(int argc, char** argv) {
  return ramjet::bootstrap<GateApp>(argc, argv);
}
