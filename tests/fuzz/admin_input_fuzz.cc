// libFuzzer target for what the admin API parses from a client: the query string of
// GET /v1/flows and POST /v1/flows/kill (FlowFilter::from_query, url_decode), and the
// JSON body of POST /v1/rules (config::parse_datapath_rule). Each must return a value
// or an Error, never crash, hang or throw.
#include <cstddef>
#include <cstdint>
#include <string_view>

#include "admin/flow_view.h"
#include "ramjet/config/config.h"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  std::string_view in(reinterpret_cast<const char*>(data), size);
  // The first byte picks the parser, so one corpus covers both.
  if (in.empty()) return 0;
  char which = in.front();
  in.remove_prefix(1);
  if (which % 2 == 0) {
    auto f = ramjet::admin::FlowFilter::from_query(in);
    if (f.ok()) {
      // What a parsed filter prints must parse again to the same filter.
      auto again = ramjet::admin::FlowFilter::from_query(f->to_query());
      if (!again.ok() || again->to_query() != f->to_query()) __builtin_trap();
    }
    (void)ramjet::admin::url_decode(in);
  } else {
    (void)ramjet::config::parse_datapath_rule(in, "POST /v1/rules");
  }
  return 0;
}
