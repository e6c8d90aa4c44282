// ramjet-flowgen: a datapath instance full of made-up flows, for benchmarks of
// the control plane (bench/flows_list.py: `ramjetctl flows list` over a million
// entries) without traffic. Creates the instance as ramjetd would (the same maps,
// pinned under <pin-root>/<instance>/, no interfaces attached) unless it exists,
// then adds the flows. Needs root.
//
//   ramjet-flowgen --pin-root /sys/fs/bpf/ramjet --instance bench --flows 1000000
//   ramjet-flowgen --pin-root /sys/fs/bpf/ramjet --instance bench --remove
#include <spdlog/spdlog.h>

#include <CLI/CLI.hpp>
#include <filesystem>
#include <iostream>

#include "datapath/datapath.h"
#include "datapath/synthetic_flows.h"

int main(int argc, char** argv) {
  CLI::App cli{"ramjet-flowgen: a pinned datapath instance with N synthetic flows",
               "ramjet-flowgen"};
  std::string pin_root = "/sys/fs/bpf/ramjet", instance;
  std::size_t flows = 0;
  unsigned table_size = 1u << 20;
  bool remove = false;
  cli.add_option("--pin-root", pin_root)->capture_default_str();
  cli.add_option("--instance", instance)->required();
  cli.add_option("--flows", flows, "Flows to add");
  cli.add_option("--table-size", table_size, "flow_table_size of a new instance")
      ->capture_default_str();
  cli.add_flag("--remove", remove, "Remove the instance's pins and exit");
  CLI11_PARSE(cli, argc, argv);
  spdlog::set_level(spdlog::level::warn);  // the loader's progress lines are not news here

  std::string dir = pin_root + "/" + instance;
  if (remove) {
    std::error_code ec;
    std::filesystem::remove_all(dir, ec);
    if (ec) {
      std::cerr << "ramjet-flowgen: cannot remove " << dir << ": " << ec.message() << "\n";
      return 1;
    }
    return 0;
  }
  if (!std::filesystem::exists(dir + "/flows")) {
    ramjet::config::Config config;
    config.datapath.enabled = true;
    config.datapath.instance = instance;
    config.datapath.pin_root = pin_root;
    config.datapath.flow_table_size = table_size;
    ramjet::datapath::StartOptions opts;
    opts.pin_root = pin_root;
    opts.keep_on_exit = true;  // leave the maps pinned
    auto dp = ramjet::datapath::Datapath::start(config, opts);
    if (!dp.ok()) {
      std::cerr << "ramjet-flowgen: " << dp.error().message << "\n";
      return 1;
    }
    (*dp)->stop();
  }
  auto t0 = std::chrono::steady_clock::now();
  auto held = ramjet::datapath::add_synthetic_flows(dir, flows, 1'000'000'000);
  if (!held.ok()) {
    std::cerr << "ramjet-flowgen: " << held.error().message << "\n";
    return 1;
  }
  double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  std::cout << dir << ": " << *held << " flows (" << flows << " added in " << s << " s)\n";
  return 0;
}
