// The pinned-map side of ramjetctl: with ramjetd down, the kernel-side commands
// (flows, block/unblock, rules list, stats) read and edit the maps ramjetd left
// pinned under <pin_root>/<instance>/, and say so. Names of rules and endpoints
// are not in the kernel; `--config FILE` supplies them from the daemon's config.
#pragma once

#include <string>

#include "admin/flow_view.h"
#include "datapath/pinned_maps.h"
#include "ramjet/result.h"

namespace ramjet::ctl {

class KernelView {
 public:
  KernelView(std::string pin_dir, admin::NameTable names)
      : maps_(std::move(pin_dir)), names_(std::move(names)) {}

  datapath::PinnedMaps& maps() { return maps_; }
  const admin::NameTable& names() const { return names_; }
  const std::string& pin_dir() const { return maps_.pin_dir(); }

  // "ramjetd is not running: kernel view from pinned maps in DIR"
  std::string note() const;

 private:
  datapath::PinnedMaps maps_;
  admin::NameTable names_;
};

// Endpoint and rule names as a config file declares them (endpoint ids by
// config::endpoint_id, rule ids by datapath::rule_id_for). Only those two lists are
// read, so an application's own `app:` settings do not get in the way.
Result<admin::NameTable> names_from_config(const std::string& path);

}  // namespace ramjet::ctl
