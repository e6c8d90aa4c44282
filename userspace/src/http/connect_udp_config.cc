#include "http/connect_udp_config.h"

#include <string>

#include "http/masque_template.h"

namespace ramjet::http {

void check_connect_udp_templates(const config::Config& c, const settings::Node& root,
                                 settings::ParseContext& ctx) {
  for (std::size_t i = 0; i < c.endpoints.size(); ++i) {
    const config::ConnectUdpSettings& cu = c.endpoints[i].connect_udp;
    MasqueTemplateResult parsed = parse_masque_template(cu.uri_template);
    if (parsed.value) continue;
    const settings::Node* ep = config::endpoint_node(root, i);
    const settings::Node* cu_node = ep != nullptr ? ep->find("connect_udp") : nullptr;
    const settings::Mark mark =
        config::mark_of(cu_node, "template",
                        config::mark_of(ep, "connect_udp", ep != nullptr ? ep->mark : root.mark));
    const std::string where = parsed.offset < cu.uri_template.size()
                                  ? "at character " + std::to_string(parsed.offset + 1)
                                  : "at the end";
    ctx.error(mark, settings::index_path("endpoints", i) + ".connect_udp.template",
              "not a connect-udp URI template (RFC 9298 2, level 1): " +
                  std::string(to_string(parsed.error)) + " " + where + " of \"" + cu.uri_template +
                  "\"");
  }
}

}  // namespace ramjet::http
