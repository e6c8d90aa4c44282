// The load-time check of connect-udp templates (endpoints[].connect_udp.template). The
// config layer declares the key but may not include the http codec that parses it, so the
// check is a config::AppSchema::Check of this layer, registered by run_app.
#pragma once

#include "ramjet/config/config.h"
#include "ramjet/settings.h"

namespace ramjet::http {

// Every endpoint's connect_udp.template is a valid RFC 9298 template (parse_masque_template),
// else an error at that key, with the codec's reason and where in the text.
void check_connect_udp_templates(const config::Config& c, const settings::Node& root,
                                 settings::ParseContext& ctx);

}  // namespace ramjet::http
