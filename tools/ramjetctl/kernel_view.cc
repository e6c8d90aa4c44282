#include "kernel_view.h"

#include <yaml-cpp/yaml.h>

#include "datapath/kernel_flow.h"

namespace ramjet::ctl {

std::string KernelView::note() const {
  return "ramjetd is not running: kernel view from pinned maps in " + pin_dir();
}

Result<admin::NameTable> names_from_config(const std::string& path) {
  admin::NameTable names;
  try {
    YAML::Node root = YAML::LoadFile(path);
    if (auto eps = root["endpoints"]; eps && eps.IsSequence())
      for (const auto& ep : eps)
        names.endpoints.push_back(ep["name"] ? ep["name"].as<std::string>() : std::string());
    if (auto dp = root["datapath"]; dp && dp.IsMap())
      if (auto rules = dp["rules"]; rules && rules.IsSequence())
        for (const auto& r : rules)
          if (r["name"]) {
            auto name = r["name"].as<std::string>();
            names.rules[datapath::rule_id_for(name)] = name;
          }
  } catch (const YAML::Exception& e) {
    return Error::config(path + ": " + e.what());
  }
  return names;
}

}  // namespace ramjet::ctl
