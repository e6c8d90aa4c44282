// The daemon's main flow, shared by ramjetd and every application built with
// ramjet::bootstrap<App>: command line, config, hooks, listeners, workers, signals.
//
// Exit codes: 0 clean stop (also after a drain), 1 runtime failure (io_uring
// unavailable, another daemon holds the admin socket or the datapath instance, a
// listener cannot bind, the admin socket cannot open, a thread failed), 2 bad
// command line or config.
#include <pthread.h>
#include <signal.h>
#include <spdlog/sinks/stdout_color_sinks.h>
#include <spdlog/spdlog.h>
#include <unistd.h>

#include <CLI/CLI.hpp>
#include <algorithm>
#include <atomic>
#include <ctime>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <optional>
#include <nlohmann/json.hpp>
#include <iterator>
#include <thread>

#include "admin/admin_server.h"
#include "admin/metrics_server.h"
#include "admin/socket_path.h"
#include "app/admin_routes.h"
#include "app/crash_report.h"
#include "app/instance_lock.h"
#include "app/runtime_policy.h"
#include "app/server.h"
#include "app/systemd_notify.h"
#include "datapath/datapath.h"
#include "datapath/metrics.h"
#include "http/connect_udp_config.h"
#include "ramjet/bootstrap.h"
#include "runtime/thread.h"
#include "runtime/worker.h"
#include "telemetry/access_log.h"
#include "telemetry/audit_log.h"
#include "telemetry/tracing.h"
#include "tls/boringssl.h"  // before openssl/sha.h: refuses OpenSSL 3
#include "tls/endpoint_table.h"
#include "telemetry/engine_metrics.h"
#include "telemetry/hook_trace.h"
#include "telemetry/metrics.h"

#include <openssl/sha.h>

namespace ramjet::engine {

namespace {

// Hex SHA-256 of a file's bytes ("" when it cannot be read): the crash report's config hash.
std::string file_sha256_hex(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return "";
  std::string bytes((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  std::uint8_t digest[SHA256_DIGEST_LENGTH];
  SHA256(reinterpret_cast<const std::uint8_t*>(bytes.data()), bytes.size(), digest);
  std::string hex;
  for (std::uint8_t b : digest) hex += fmt::format("{:02x}", b);
  return hex;
}

// CLOCK_MONOTONIC in microseconds, as systemd's RELOADING=1 wants it (MONOTONIC_USEC).
std::uint64_t monotonic_usec() {
  timespec ts{};
  ::clock_gettime(CLOCK_MONOTONIC, &ts);
  return static_cast<std::uint64_t>(ts.tv_sec) * 1'000'000u +
         static_cast<std::uint64_t>(ts.tv_nsec) / 1'000u;
}

constexpr int kExitOk = 0;
constexpr int kExitRuntime = 1;
constexpr int kExitUsage = 2;

spdlog::level::level_enum to_spdlog(config::LogLevel l) {
  switch (l) {
    case config::LogLevel::kTrace:
      return spdlog::level::trace;
    case config::LogLevel::kDebug:
      return spdlog::level::debug;
    case config::LogLevel::kInfo:
      return spdlog::level::info;
    case config::LogLevel::kWarn:
      return spdlog::level::warn;
    case config::LogLevel::kError:
      return spdlog::level::err;
    case config::LogLevel::kOff:
      return spdlog::level::off;
  }
  return spdlog::level::info;
}

telemetry::AccessLogFormat to_format(config::AccessLogFormat f) {
  switch (f) {
    case config::AccessLogFormat::kText:
      return telemetry::AccessLogFormat::kText;
    case config::AccessLogFormat::kJson:
      return telemetry::AccessLogFormat::kJson;
    case config::AccessLogFormat::kOff:
      return telemetry::AccessLogFormat::kOff;
  }
  return telemetry::AccessLogFormat::kText;
}

// "ip:port" the metrics server bound, or null when it is off.
nlohmann::json metrics_address(const admin::MetricsServer* metrics) {
  return metrics != nullptr ? nlohmann::json(metrics->bound().to_string()) : nlohmann::json();
}

// Written to a temporary name and renamed, so a reader never sees half a file.
bool write_ready_file(const std::string& path, const app::Server& server,
                      const std::string& admin_socket, const admin::MetricsServer* metrics) {
  nlohmann::json eps = nlohmann::json::object();
  for (const auto& [name, addr] : server.bound()) eps[name] = addr.to_string();
  nlohmann::json j = {{"pid", ::getpid()},
                      {"endpoints", eps},
                      {"admin_socket", admin_socket},
                      {"metrics", metrics_address(metrics)}};
  std::string tmp = path + ".tmp";
  {
    std::ofstream out(tmp);
    out << j.dump() << "\n";
    if (!out) return false;
  }
  return std::rename(tmp.c_str(), path.c_str()) == 0;
}

// Log files reopened for rotation (logrotate renames, then signals): the first
// thing SIGHUP does, before it reloads the datapath rules.
void reopen_logs(telemetry::AccessLog& access_log, telemetry::AuditLog* audit_log,
                 telemetry::AuditLog* span_log) {
  access_log.reopen();
  for (telemetry::AuditLog* log : {audit_log, span_log}) {
    if (log == nullptr) continue;
    if (auto r = log->reopen(); !r.ok()) spdlog::warn("{}", r.error().message);
  }
  spdlog::info("log files reopened");
}

// Set by a thread that failed (runtime::run_guarded); the daemon then drains and exits 1.
std::atomic<bool> g_thread_failed{false};

void on_thread_failure(std::string_view, std::string_view) {
  g_thread_failed = true;
  ::kill(::getpid(), SIGTERM);  // the signal loop drains
}

// What this process holds so that no second daemon shares it (see InstanceLock).
struct Claim {
  std::string admin_socket;  // where the admin socket goes ("" = none)
  std::optional<app::InstanceLock> admin_lock;
  std::optional<app::InstanceLock> datapath_lock;
};

Result<Claim> claim_instance(const config::Config& cfg, const std::string& config_path) {
  Claim claim;
  if (!cfg.server.admin_socket.empty()) {
    const char* runtime_dir = std::getenv("XDG_RUNTIME_DIR");
    auto choice = admin::choose_admin_socket(cfg.server.admin_socket, config_path,
                                             runtime_dir != nullptr ? runtime_dir : "");
    if (choice.fallback_note) spdlog::warn("{}", *choice.fallback_note);
    claim.admin_socket = choice.path;
    std::string dir = std::filesystem::path(claim.admin_socket).parent_path().string();
    if (!dir.empty()) {
      if (auto r = admin::ensure_directory(dir, "server.admin_socket"); !r.ok()) return r.error();
    }
    auto lock =
        app::InstanceLock::acquire(claim.admin_socket + ".lock", "admin socket " + claim.admin_socket);
    if (!lock.ok()) return lock.error();
    claim.admin_lock = std::move(*lock);
  }
  if (cfg.datapath.enabled) {
    if (auto r = datapath::ensure_bpffs(cfg.datapath.pin_root); !r.ok()) return r.error();
    std::string dir = cfg.datapath.pin_root + "/" + cfg.datapath.instance;
    const bool existed = std::filesystem::exists(dir);
    if (auto r = admin::ensure_directory(dir, "datapath"); !r.ok()) return r.error();
    auto lock = app::InstanceLock::acquire(dir, "datapath instance " + cfg.datapath.instance);
    if (!lock.ok()) return lock.error();
    if (!existed) lock->remove_empty_dir_on_release();
    claim.datapath_lock = std::move(*lock);
  }
  return Result<Claim>(std::move(claim));
}

}  // namespace

int run_app(const AppDescriptor& app, int argc, char** argv) {
  // The crash reporter is this binary re-executed (app/crash_report.h).
  if (argc >= 2 && argv[1] == app::crash::kReporterFlag)
    return app::crash::reporter_main(argc - 2, argv + 2);
  // The app's schema, with the checks that need the layers above config: a TLS file that
  // does not load, or a connect-udp template that does not parse, is a config error at its key.
  config::AppSchema schema = app.schema;
  schema.checks.push_back(&tls::check_config_files);
  schema.checks.push_back(&http::check_connect_udp_templates);
  CLI::App cli{app.description, app.name};
  std::string config_path;
  std::string check_path;
  bool print_default = false;
  bool show_version = false;
  bool keep_datapath = false;
  cli.add_option("-c,--config", config_path, "Run with this YAML config file");
  cli.add_flag("--keep-datapath", keep_datapath,
               "Restart mode: on exit leave the eBPF programs attached and their maps pinned, "
               "so fast-path flows keep forwarding; the next start adopts them");
  cli.add_option("--check-config", check_path, "Validate a config file and exit (0 ok, 2 bad)");
  cli.add_flag("--print-default-config", print_default,
               "Print the whole documented default config and exit");
  cli.add_flag("-V,--version", show_version, "Print the version and exit");
  try {
    cli.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    int rc = cli.exit(e);
    return rc == 0 ? kExitOk : kExitUsage;
  }

  if (show_version) {
    std::cout << app.name << " " << app.version << "\n";
    return kExitOk;
  }
  if (print_default) {
    std::cout << config::default_config_yaml(schema);
    return kExitOk;
  }
  if (!check_path.empty()) {
    auto c = config::load_file(check_path, schema);
    if (!c.ok()) {
      std::cerr << c.error().message << "\n";
      return kExitUsage;
    }
    std::cout << check_path << ": ok\n";
    return kExitOk;
  }
  if (config_path.empty()) {
    std::cerr << app.name << ": --config FILE is required (see --help)\n";
    return kExitUsage;
  }

  auto loaded = config::load_file(config_path, schema);
  if (!loaded.ok()) {
    std::cerr << loaded.error().message << "\n";
    return kExitUsage;
  }
  const config::Config& cfg = *loaded;

  auto logger = spdlog::stderr_color_mt("ramjet");
  spdlog::set_default_logger(logger);
  spdlog::set_level(to_spdlog(cfg.logging.level));
  spdlog::flush_on(spdlog::level::info);
  runtime::set_thread_failure_handler(on_thread_failure);

  // Without io_uring nothing below can run: say so in one line before starting anything.
  if (auto r = runtime::probe_io_uring(); !r.ok()) {
    spdlog::error("{}", r.error().message);
    return kExitRuntime;
  }
  // Before any other thread exists (it forks the reporter).
  {
    std::error_code ec;
    const auto absolute = std::filesystem::absolute(config_path, ec);
    app::crash::Identity identity{app.name + " " + app.version,
                                  ec ? config_path : absolute.string(),
                                  file_sha256_hex(config_path)};
    if (auto r = app::crash::install(cfg.server.crash_dir, identity); !r.ok())
      spdlog::warn("{}", r.error().message);
  }

  // Before any listener or pin is touched: a second daemon must leave the first alone.
  auto claimed = claim_instance(cfg, config_path);
  if (!claimed.ok()) {
    spdlog::error("{}", claimed.error().message);
    return kExitRuntime;
  }
  const std::string& admin_socket = claimed->admin_socket;

  // Read (and unset) before any other thread exists: systemd's notify socket and watchdog.
  const auto systemd = app::SystemdNotifier::from_environment();

  // Signals go to this thread only: block them before any other thread exists.
  sigset_t signals;
  sigemptyset(&signals);
  for (int s : {SIGTERM, SIGINT, SIGHUP, SIGUSR1, SIGUSR2}) sigaddset(&signals, s);
  pthread_sigmask(SIG_BLOCK, &signals, nullptr);
  ::signal(SIGPIPE, SIG_IGN);

  telemetry::hook_trace().configure(cfg.telemetry.hook_trace, cfg.telemetry.hook_trace_capacity);
  telemetry::AccessLog access_log(to_format(cfg.logging.access_log), cfg.logging.access_log_path);
  // Outlives the server: sessions closed during the drain still write their lines.
  std::unique_ptr<telemetry::AuditLog> audit_log;
  if (!cfg.telemetry.audit_log.path.empty()) {
    auto opened = telemetry::AuditLog::open(cfg.telemetry.audit_log.path);
    if (!opened.ok()) {
      spdlog::error("{}", opened.error().message);
      return kExitRuntime;
    }
    audit_log = std::move(*opened);
  }
  // The span file of telemetry.tracing, written like the audit log (telemetry/tracing.h).
  std::unique_ptr<telemetry::AuditLog> span_log;
  if (!cfg.telemetry.tracing.path.empty()) {
    auto opened = telemetry::AuditLog::open(
        cfg.telemetry.tracing.path, telemetry::AuditLog::kDefaultMaxQueuedBytes,
        {.config_key = "telemetry.tracing.path",
         .metric_prefix = "ramjet_tracing",
         .what = "Span",
         .thread = "span log"});
    if (!opened.ok()) {
      spdlog::error("{}", opened.error().message);
      return kExitRuntime;
    }
    span_log = std::move(*opened);
  }
  telemetry::tracer().configure(span_log.get(), cfg.telemetry.tracing.sample);
  telemetry::MetricsRegistry metrics_registry;
  telemetry::register_engine_metrics(metrics_registry, app.name, app.version);
  if (audit_log)
    metrics_registry.add_source([&](telemetry::MetricsWriter& w) { audit_log->write_metrics(w); });
  if (span_log)
    metrics_registry.add_source([&](telemetry::MetricsWriter& w) { span_log->write_metrics(w); });

  std::unique_ptr<HookSet> hooks = app.start(cfg.app.get());

  app::Server server(cfg, *hooks, access_log, audit_log.get());
  if (auto r = server.load_auth(); !r.ok()) {
    spdlog::error("{}", r.error().message);
    return kExitUsage;
  }
  if (auto r = server.load_tls(); !r.ok()) {
    spdlog::error("{}", r.error().message);
    return kExitUsage;
  }
  if (auto r = server.bind_listeners(); !r.ok()) {
    spdlog::error("{}", r.error().message);
    return kExitRuntime;
  }

  // The TUN hand-off's per-packet counters (a map read per scrape, as for the datapath).
  if (const datapath::TunHandoff* handoff = server.tun_handoff())
    metrics_registry.add_source([handoff](telemetry::MetricsWriter& w) {
      datapath::write_handoff_metrics(w, handoff->stats());
    });

  // The QUIC steering programs' per-packet counters.
  if (!server.quic_steering_stats().empty())
    metrics_registry.add_source([&server](telemetry::MetricsWriter& w) {
      datapath::write_quic_steering_metrics(w, server.quic_steering_stats());
    });

  std::unique_ptr<datapath::Datapath> dp;
  if (cfg.datapath.enabled) {
    datapath::StartOptions opts;
    opts.pin_root = cfg.datapath.pin_root;
    opts.keep_on_exit = keep_datapath;
    auto started = datapath::Datapath::start(cfg, opts);
    if (!started.ok()) {
      spdlog::error("{}", started.error().message);
      return kExitRuntime;
    }
    dp = std::move(*started);
    if (auto r = server.attach_datapath(*dp); !r.ok()) {
      spdlog::error("{}", r.error().message);
      return kExitRuntime;
    }
    // Each scrape reads the per-CPU stats map (a syscall per stat, on the metrics thread).
    metrics_registry.add_source([&dp = *dp](telemetry::MetricsWriter& w) {
      datapath::write_datapath_metrics(w, dp.stats());
      datapath::write_flow_table_metrics(w, dp.flow_entries());
      datapath::write_fallback_metrics(w, dp.fallback_counts(),
                                       [&dp](std::uint32_t id) { return dp.rule_name(id); });
    });
  }

  std::unique_ptr<admin::MetricsServer> metrics;
  if (cfg.telemetry.metrics.listen.enabled()) {
    metrics = std::make_unique<admin::MetricsServer>(metrics_registry);
    if (auto r = metrics->start(*cfg.telemetry.metrics.listen.address); !r.ok()) {
      spdlog::error("{}", r.error().message);
      return kExitRuntime;
    }
  }

  app::RuntimePolicy policy(config_path, schema, cfg, dp.get());
  // SIGHUP and POST /v1/reload: reopen the logs, re-read the config file; what changed is
  // applied or named, key by key, as needing a restart.
  auto reload = [&]() -> Result<app::ReloadReport> {
    systemd.notify(fmt::format("RELOADING=1\nMONOTONIC_USEC={}\nSTATUS=reloading {}",
                               monotonic_usec(), config_path));
    struct ReadyAgain {
      const app::SystemdNotifier& systemd;
      ~ReadyAgain() { systemd.notify("READY=1\nSTATUS=serving"); }
    } ready_again{systemd};
    reopen_logs(access_log, audit_log.get(), span_log.get());
    // The file is checked even with the datapath off; htpasswd files are read again.
    auto r = policy.reload([&](const config::Config& next) {
      return server.prepare_engine_reload(next);
    });
    if (!r.ok()) {
      spdlog::error("reload: {} (keeping the running config)", r.error().message);
      return r;
    }
    spdlog::set_level(to_spdlog(policy.logging().level));
    for (const auto& key : r->applied) spdlog::info("reload: {} applied", key);
    for (const auto& key : r->restart_required)
      spdlog::warn("reload: {} changed in {}; it takes effect after a restart", key, config_path);
    spdlog::info("reload: {} datapath rules from {}", r->rules, config_path);
    return r;
  };
  app::AdminRoutes routes{
      .server = server,
      .config = cfg,
      .datapath = dp.get(),
      .audit_log = audit_log.get(),
      .status =
          [&] {
            nlohmann::json eps = nlohmann::json::object();
            for (const auto& [name, addr] : server.bound()) eps[name] = addr.to_string();
            return nlohmann::json{{"app", app.name},   {"version", app.version},
                                  {"pid", ::getpid()}, {"workers", server.worker_count()},
                                  {"endpoints", eps},  {"metrics", metrics_address(metrics.get())}};
          },
      .policy = policy,
      .reload = reload,
      .drain = [] { ::kill(::getpid(), SIGTERM); },  // the signal loop drains
  };
  admin::AdminServer admin;
  app::add_admin_routes(admin, routes);
  if (!admin_socket.empty()) {
    if (auto r = admin.start(admin_socket); !r.ok()) {
      spdlog::error("{}", r.error().message);
      return kExitRuntime;
    }
  }

  telemetry::HookEvent start_ev{0, "lifecycle.start", 0, "", "", "", {}};
  auto t0 = std::chrono::steady_clock::now();
  hooks->lifecycle_start();
  start_ev.duration =
      std::chrono::duration_cast<std::chrono::microseconds>(std::chrono::steady_clock::now() - t0);
  if (telemetry::hook_trace().enabled()) telemetry::hook_trace().record(start_ev);

  if (auto r = server.start(); !r.ok()) {
    spdlog::error("{}", r.error().message);
    return kExitRuntime;
  }
  // The listeners are in the sockmap and the workers accept: escalated flows may
  // reach this process (a --keep-datapath predecessor left them draining).
  if (dp) {
    if (auto r = dp->mark_ready(); !r.ok()) spdlog::warn("{}", r.error().message);
  }
  for (const auto& [name, addr] : server.bound())
    spdlog::info("endpoint {} listening on {}", name, addr.to_string());
  if (metrics) spdlog::info("metrics on http://{}/metrics", metrics->bound().to_string());
  if (!cfg.server.ready_file.empty() &&
      !write_ready_file(cfg.server.ready_file, server, admin_socket, metrics.get()))
    spdlog::warn("cannot write server.ready_file {}", cfg.server.ready_file);
  spdlog::info("{} {} ready with {} workers", app.name, app.version, server.worker_count());
  systemd.notify(fmt::format("READY=1\nMAINPID={}\nSTATUS=serving {} endpoints with {} workers",
                             ::getpid(), server.bound().size(), server.worker_count()));
  // Pings while every worker answers a heartbeat within a quarter of systemd's interval.
  std::optional<app::SystemdWatchdog> watchdog;
  if (auto interval = systemd.watchdog_interval()) {
    const auto heartbeat = std::chrono::duration_cast<std::chrono::milliseconds>(*interval / 4);
    watchdog.emplace(systemd, *interval, [&server, heartbeat] {
      return server.workers_answer(std::max(heartbeat, std::chrono::milliseconds(1)));
    });
    spdlog::info("systemd watchdog: pinging every {}ms while every worker answers",
                 std::chrono::duration_cast<std::chrono::milliseconds>(*interval / 2).count());
  }

  // A helper thread waits for the workers and wakes this one when they are done.
  std::atomic<bool> finished{false};
  pthread_t main_thread = pthread_self();
  std::thread waiter([&] {
    ::pthread_setname_np(::pthread_self(), "waiter");
    runtime::run_guarded("waiter", [&] { server.wait(); });
    finished = true;
    pthread_kill(main_thread, SIGUSR2);
  });

  bool draining = false;
  while (!finished) {
    int sig = 0;
    if (sigwait(&signals, &sig) != 0) continue;
    if ((sig == SIGTERM || sig == SIGINT) && !draining) {
      draining = true;
      spdlog::info("signal {}: draining (deadline {}ms)", sig, cfg.server.drain_timeout.count());
      systemd.notify("STOPPING=1\nSTATUS=draining");
      // First, so new escalated flows take their fallback at once instead of
      // chasing listeners that are about to close.
      if (dp) {
        if (auto r = dp->mark_draining(); !r.ok()) spdlog::warn("{}", r.error().message);
      }
      server.drain();
    } else if (sig == SIGHUP) {
      spdlog::info("SIGHUP: reopening log files and reloading the datapath rules");
      (void)reload();
    } else if (sig == SIGUSR1) {
      // logrotate's postrotate (config/ramjet.logrotate): reopen, reload nothing.
      reopen_logs(access_log, audit_log.get(), span_log.get());
    }
  }
  waiter.join();
  watchdog.reset();
  admin.stop();
  if (metrics) metrics->stop();
  if (dp) dp->stop();

  t0 = std::chrono::steady_clock::now();
  hooks->lifecycle_stop();
  if (telemetry::hook_trace().enabled()) {
    telemetry::hook_trace().record({0, "lifecycle.stop", 0, "", "", "",
                                    std::chrono::duration_cast<std::chrono::microseconds>(
                                        std::chrono::steady_clock::now() - t0)});
  }
  if (g_thread_failed) {
    spdlog::error("stopped after a thread failed (see above)");
    return kExitRuntime;
  }
  spdlog::info("stopped");
  return kExitOk;
}

}  // namespace ramjet::engine
