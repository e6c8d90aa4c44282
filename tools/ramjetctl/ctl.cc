// Ctl: what every command shares (exit codes, the admin client, the kernel view).
#include <iostream>

#include "commands.h"

namespace ramjet::ctl {

int Ctl::fail(const Error& e) const {
  return fail(permission_denied(e) ? kExitPermission : kExitError, e.message);
}

int Ctl::fail(int code, const std::string& message) const {
  std::cerr << "ramjetctl: " << message << "\n";
  return code;
}

void Ctl::note(const std::string& message) const {
  std::cerr << "ramjetctl: " << message << "\n";
}

Ctl::Answer Ctl::call(std::string_view method, std::string_view target, const nlohmann::json& body,
                      bool quiet_if_down) {
  auto reply = admin_.request(method, target, body.is_null() ? std::string() : body.dump());
  if (!reply.ok()) {
    bool down = daemon_not_running(reply.error());
    if (down && quiet_if_down) return {kExitError, true, {}};
    return {fail(reply.error()), down, {}};
  }
  if (reply->status < 200 || reply->status > 299) {
    int code = reply->status == 404   ? kExitNotFound
               : reply->status == 403 ? kExitPermission
               : reply->status == 400 ? kExitUsage
                                      : kExitError;
    return {fail(code, error_text(*reply)), false, {}};
  }
  auto j = nlohmann::json::parse(reply->body, nullptr, /*allow_exceptions=*/false);
  if (j.is_discarded())
    return {fail(kExitError, std::string(target) + ": the answer is not JSON: " + reply->body),
            false,
            {}};
  return {kExitOk, false, std::move(j)};
}

Result<nlohmann::json> Ctl::daemon_datapath() {
  auto reply = admin_.request("GET", "/v1/datapath");
  if (!reply.ok()) return reply.error();
  auto j = nlohmann::json::parse(reply->body, nullptr, false);
  if (reply->status != 200 || !j.is_object())
    return Error::internal("/v1/datapath: " + error_text(*reply));
  return j;
}

Result<KernelView> Ctl::kernel_view(const std::string& pin_dir) {
  admin::NameTable names;
  if (!options_.names_config.empty()) {
    auto n = names_from_config(options_.names_config);
    if (!n.ok()) return n.error();
    names = std::move(*n);
  }
  std::string dir = pin_dir.empty() ? options_.pin_root + "/" + options_.instance : pin_dir;
  return KernelView(std::move(dir), std::move(names));
}

admin::NameTable Ctl::daemon_names() {
  admin::NameTable names;
  if (auto r = admin_.request("GET", "/v1/endpoints"); r.ok() && r->status == 200) {
    auto j = nlohmann::json::parse(r->body, nullptr, false);
    if (j.is_array())
      for (const auto& ep : j) names.set_endpoint(ep.value("id", 0u), ep.value("name", ""));
  }
  if (auto r = admin_.request("GET", "/v1/rules"); r.ok() && r->status == 200) {
    auto j = nlohmann::json::parse(r->body, nullptr, false);
    if (j.is_object() && j.contains("rules") && j["rules"].is_array())
      for (const auto& rule : j["rules"])
        if (rule.contains("rule_id") && rule["rule_id"].is_number())
          names.rules[rule["rule_id"].get<std::uint32_t>()] = rule.value("name", "");
  }
  return names;
}

}  // namespace ramjet::ctl
