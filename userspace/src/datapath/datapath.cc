#include "datapath/datapath.h"

#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include <linux/if_link.h>
#include <net/if.h>
#include <spdlog/spdlog.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <time.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <cstring>
#include <filesystem>

#include "datapath.skel.h"
#include "datapath/abi_stamp.h"
#include "datapath/denylist.h"
#include "datapath/flow_table.h"
#include "datapath/hook_choice.h"
#include "datapath/json.h"
#include "datapath/links.h"
#include "datapath/policy.h"
#include "datapath/routing.h"
#include "runtime/thread.h"
#include "telemetry/event_feed.h"

namespace ramjet::datapath {

namespace {

constexpr unsigned long kBpfFsMagic = 0xcafe4a11;
constexpr std::size_t kEventsKept = 4096;

std::string errno_text(int err) {
  std::string s = strerror(err);
  if (err == EPERM || err == EACCES) s += " (needs root: CAP_BPF, CAP_NET_ADMIN, CAP_SYS_ADMIN)";
  return s;
}

bool is_bpffs(const std::string& path) {
  struct statfs st {};
  return ::statfs(path.c_str(), &st) == 0 && static_cast<unsigned long>(st.f_type) == kBpfFsMagic;
}

}  // namespace

Result<void> ensure_bpffs(const std::string& pin_root) {
  namespace fs = std::filesystem;
  std::error_code ec;
  fs::path root(pin_root);
  fs::path mountpoint = pin_root.rfind("/sys/fs/bpf", 0) == 0 ? fs::path("/sys/fs/bpf") : root;
  fs::create_directories(mountpoint, ec);
  if (!is_bpffs(mountpoint)) {
    if (::mount("bpf", mountpoint.c_str(), "bpf", 0, "mode=0700") != 0)
      return Error::kernel(
          errno, "cannot mount bpffs on " + mountpoint.string() + ": " + errno_text(errno));
    spdlog::info("datapath: mounted bpffs on {}", mountpoint.string());
  }
  fs::create_directories(root, ec);
  if (!is_bpffs(root)) return Error::config("datapath: " + pin_root + " is not on a bpffs");
  return {};
}

namespace {

template <typename K, typename V>
int update(int fd, const K& k, const V& v) {
  return bpf_map_update_elem(fd, &k, &v, BPF_ANY) == 0 ? 0 : -errno;
}

template <typename K>
std::vector<K> all_keys(int fd) {
  auto keys = map_keys<K>(fd);
  return keys.ok() ? std::move(*keys) : std::vector<K>{};
}

void fill_addr(std::uint32_t* words, const IpAddress& ip) {
  std::memset(words, 0, 16);
  std::memcpy(words, ip.data(), ip.size());
}

// Unpins the links a previous run left for interfaces this config does not list:
// the pin is such a link's last reference, so this detaches the old program.
void release_unconfigured_links(const std::string& dir,
                                const std::vector<std::pair<std::string, int>>& kept) {
  std::error_code ec;
  for (const auto& entry : std::filesystem::directory_iterator(dir, ec)) {
    std::string path = entry.path().string();
    bool configured = false;
    for (const auto& link : kept) configured = configured || link.first == path;
    if (configured) continue;
    spdlog::warn("datapath: releasing {}: its interface is not in datapath.interfaces", path);
    ::unlink(path.c_str());
  }
}

// The policy route escalated packets need, when a rule escalates.
std::optional<PolicyRoute> policy_route(const config::DatapathSettings& settings) {
  for (const auto& r : settings.rules)
    if (r.action == config::DatapathAction::kEscalate)
      return PolicyRoute{settings.escalate_mark, settings.route_table, 0};
  return std::nullopt;
}

int on_event(void* ctx, void* data, std::size_t size) {
  auto* self = static_cast<std::deque<Event>*>(ctx);
  if (size < sizeof(ramjet_event_header)) return 0;
  const auto* hdr = static_cast<const ramjet_event_header*>(data);
  Event ev;
  ev.type = hdr->type;
  ev.reason = hdr->reason;
  ev.ifindex = hdr->ifindex;
  ev.ts_ns = hdr->ts_ns;
  if ((hdr->type == RAMJET_EVENT_FALLBACK || hdr->type == RAMJET_EVENT_RECOVERED) &&
      size >= sizeof(ramjet_event_fallback)) {
    const auto* f = static_cast<const ramjet_event_fallback*>(data);
    FlowEntry e{};
    e.key = f->key;
    e.flow.flow_id = f->flow_id;
    e.flow.rule_id = f->rule_id;
    e.flow.rule_index = f->rule_id ? 0 : RAMJET_RULE_INDEX_NONE;
    e.flow.endpoint_id = f->endpoint_id;
    e.flow.verdict = RAMJET_ACTION_ESCALATE;
    e.flow.fallback = f->mode;
    e.flow.fallback_cause = f->cause;
    e.flow.origin_side = f->origin_side;
    ev.flow = e;
  } else if ((hdr->type == RAMJET_EVENT_FLOW_NEW || hdr->type == RAMJET_EVENT_ESCALATE) &&
             size >= sizeof(ramjet_event_flow)) {
    const auto* f = static_cast<const ramjet_event_flow*>(data);
    FlowEntry e{};
    e.key = f->key;
    e.flow.flow_id = f->flow_id;
    e.flow.rule_id = f->rule_id;
    e.flow.endpoint_id = f->endpoint_id;
    e.flow.verdict = f->verdict;
    e.flow.origin_side = f->origin_side;
    ev.flow = e;
  } else if (hdr->type == RAMJET_EVENT_DROP_SAMPLE && size >= sizeof(ramjet_event_drop)) {
    ev.packet_len = static_cast<const ramjet_event_drop*>(data)->packet_len;
  }
  self->push_back(std::move(ev));
  if (self->size() > kEventsKept) self->pop_front();
  return 0;
}

}  // namespace

void Datapath::SkelDeleter::operator()(::datapath* s) const {
  datapath__destroy(s);
}

Datapath::~Datapath() {
  stop();
}

std::uint64_t Datapath::monotonic_now_ns() const {
  return datapath::monotonic_now_ns();
}

Result<std::unique_ptr<Datapath>> Datapath::start(const config::Config& config,
                                                  const StartOptions& options) {
  std::unique_ptr<Datapath> dp(new Datapath());
  dp->options_ = options;
  dp->settings_ = config.datapath;
  for (const auto& ep : config.endpoints) dp->endpoint_names_.push_back(ep.name);
  // Before anything is attached: a refused start must leave pins and links as they were.
  if (auto route = policy_route(config.datapath))
    if (auto r = check_table_is_ours(*route); !r.ok())
      return Error::config("datapath: " + r.error().message);
  if (auto r = dp->load(config); !r.ok()) return r.error();
  if (auto r = dp->attach(config); !r.ok()) {
    dp->stop();
    return r.error();
  }
  if (auto r = dp->apply_policy(config); !r.ok()) {
    dp->stop();
    return r.error();
  }
  dp->sweeper_ = std::thread(
      [p = dp.get()] { runtime::run_guarded("datapath events", [p] { p->sweeper(); }); });
  return dp;
}

Result<void> Datapath::load(const config::Config& config) {
  if (auto r = ensure_bpffs(options_.pin_root); !r.ok()) return r;
  pin_dir_ = options_.pin_root + "/" + settings_.instance;
  std::error_code ec;
  std::filesystem::create_directories(pin_dir_ + "/links", ec);
  if (ec) return Error::config("datapath: cannot create " + pin_dir_ + ": " + ec.message());

  skel_.reset(datapath__open());
  if (!skel_) return Error::kernel(errno, "datapath: cannot open the BPF object");
  // From the maps as compiled, before this config resizes any.
  abi_stamp_ = abi_stamp_of(abi_layout(skel_->obj));
  skel_->rodata->pass_fragments = settings_.pass_fragments ? 1 : 0;
  skel_->rodata->drop_sample_rate = settings_.drop_sample_rate;
  skel_->rodata->escalate_mark = settings_.escalate_mark;
  skel_->rodata->emit_flow_events = 1;
  xdp_metadata_ = kernel_allows_xdp_metadata();
  skel_->rodata->xdp_metadata = xdp_metadata_ ? 1 : 0;
  if (!xdp_metadata_)
    spdlog::warn(
        "datapath: this kernel refuses bpf_xdp_adjust_meta to XDP programs, so XDP cannot "
        "hand escalated packets to TC: every interface runs its fast path in tcx ingress");
  bpf_map__set_max_entries(skel_->maps.flows, settings_.flow_table_size);

  PinCheck pins = check_pins(pin_dir_, skel_->obj, abi_stamp_);
  if (pins.verdict == PinCheck::Verdict::kRecreate) {
    // The old programs keep their maps until the links swap them out (attach).
    spdlog::warn(
        "datapath: not adopting the maps pinned in {}: {}; re-creating them (flows, "
        "blocks and classes start empty)",
        pin_dir_, pins.reason);
    if (auto r = remove_pinned_maps(pin_dir_); !r.ok())
      return Error::kernel(r.error().code, "datapath: " + r.error().message);
    recreated_because_ = pins.reason;
  }
  adopted_ = pins.verdict == PinCheck::Verdict::kAdopt;

  bpf_map* map;
  bpf_object__for_each_map(map, skel_->obj) {
    std::string name = pinned_map_name(map);
    if (!name.empty()) bpf_map__set_pin_path(map, (pin_dir_ + "/" + name).c_str());
  }
  if (int err = datapath__load(skel_.get()); err != 0) {
    int e = -err;
    return Error::kernel(e, "datapath: cannot load the BPF programs: " + errno_text(e));
  }
  if (!adopted_) {
    // A fresh instance: flow ids start at a point no earlier run of this boot used.
    skel_->data->next_flow_id = monotonic_now_ns();
  }
  // Last: a start that stops before this leaves maps without a stamp, which the
  // next start re-creates.
  if (auto r = write_pinned_stamp(pin_dir_, abi_stamp_); !r.ok())
    return Error::kernel(r.error().code, "datapath: " + r.error().message);
  (void)config;
  spdlog::info("datapath: {} maps in {} (ABI stamp {})",
               adopted_ ? "adopted" : (recreated_because_.empty() ? "created" : "re-created"),
               pin_dir_, stamp_text(abi_stamp_));
  return {};
}

Result<void> Datapath::attach(const config::Config& config) {
  int xdp_fd = bpf_program__fd(skel_->progs.xdp_classify);
  int tc_in_fd = bpf_program__fd(skel_->progs.tc_ingress);
  int tc_out_fd = bpf_program__fd(skel_->progs.tc_egress);
  int tc_classify_fd = bpf_program__fd(skel_->progs.tc_classify);

  for (const auto& name : settings_.interfaces) {
    InterfaceInfo info;
    info.name = name;
    info.ifindex = ::if_nametoindex(name.c_str());
    if (info.ifindex == 0) return Error::config("datapath: no interface named " + name);

    auto link = [&](const std::string& kind, int prog_fd, int attach_type,
                    std::uint32_t xdp_flags) -> Result<bool> {
      LinkSpec spec{pin_dir_ + "/links/" + kind + "-" + name,
                    kind,
                    name,
                    info.ifindex,
                    attach_type,
                    xdp_flags};
      auto attached = attach_link(spec, prog_fd);
      if (!attached.ok()) return attached.error();
      links_.emplace_back(spec.path, attached->fd);
      return attached->adopted;
    };

    auto kind = link_kind(info.ifindex);
    if (!kind.ok())
      return Error::kernel(kind.error().code, "datapath: " + name + ": " + kind.error().message);
    HookChoice hook = choose_hook(settings_, name, *kind, xdp_metadata_);
    info.fastpath_hook = hook_name(hook.hook);
    info.fastpath_hook_reason = hook.reason;
    if (hook.hook == config::FastpathHook::kTc) {
      // The whole fast path in tcx ingress; no XDP program (a previous run's XDP
      // link is released below, with the links this run does not keep).
      auto in = link("tcx-ingress", tc_classify_fd, kTcxIngress, 0);
      if (!in.ok()) return in.error();
      if (auto t = link("tcx-egress", tc_out_fd, kTcxEgress, 0); !t.ok()) return t.error();
      spdlog::info("datapath: {} {} (ifindex {}): fast path in tcx ingress ({}), tcx egress",
                   *in ? "adopted" : "attached", name, info.ifindex, hook.reason);
      interfaces_.push_back(info);
      continue;
    }

    Result<bool> xdp = false;
    if (settings_.xdp_mode != config::XdpMode::kGeneric) {
      xdp = link("xdp", xdp_fd, BPF_XDP, XDP_FLAGS_DRV_MODE);
      info.xdp_mode = "native";
      if (!xdp.ok() && settings_.xdp_mode == config::XdpMode::kAuto) {
        spdlog::warn("datapath: native XDP failed on {} ({}); falling back to generic XDP", name,
                     xdp.error().message);
        xdp = link("xdp", xdp_fd, BPF_XDP, XDP_FLAGS_SKB_MODE);
        info.xdp_mode = "generic";
      }
    } else {
      xdp = link("xdp", xdp_fd, BPF_XDP, XDP_FLAGS_SKB_MODE);
      info.xdp_mode = "generic";
    }
    if (!xdp.ok()) return xdp.error();
    bool adopted_xdp = *xdp;
    if (adopted_xdp) {
      LIBBPF_OPTS(bpf_xdp_query_opts, q);
      if (bpf_xdp_query(static_cast<int>(info.ifindex), 0, &q) == 0)
        info.xdp_mode = q.attach_mode == XDP_ATTACHED_SKB ? "generic" : "native";
    }
    if (auto t = link("tcx-ingress", tc_in_fd, kTcxIngress, 0); !t.ok()) return t.error();
    if (auto t = link("tcx-egress", tc_out_fd, kTcxEgress, 0); !t.ok()) return t.error();
    spdlog::info("datapath: {} {} (ifindex {}): fast path in XDP {} ({}), tcx ingress and egress",
                 adopted_xdp ? "adopted" : "attached", name, info.ifindex, info.xdp_mode,
                 hook.reason);
    interfaces_.push_back(info);
  }

  release_unconfigured_links(pin_dir_ + "/links", links_);

  if (auto route = policy_route(settings_)) {
    if (auto r = install_policy_route(*route); !r.ok())
      return Error::config("datapath: " + r.error().message);
    routes_installed_ = true;
  }
  (void)config;
  return {};
}

Result<void> Datapath::apply_policy(const config::Config& config) {
  PolicyNames names;
  names.ifindex = [](const std::string& n) { return ::if_nametoindex(n.c_str()); };
  names.endpoint_id = [&](const std::string& n) -> std::uint32_t {
    for (std::size_t i = 0; i < config.endpoints.size(); ++i)
      if (config.endpoints[i].name == n) return static_cast<std::uint32_t>(i + 1);
    return 0;
  };
  auto compiled = compile(config.datapath, names);
  if (!compiled.ok()) return compiled.error();

  int rules_fd = bpf_map__fd(skel_->maps.rules);
  for (std::uint32_t i = 0; i < RAMJET_MAX_RULES; ++i) {
    ramjet_rule r = i < compiled->rules.size() ? compiled->rules[i] : ramjet_rule{};
    if (int err = update(rules_fd, i, r); err != 0)
      return Error::kernel(-err, "datapath: cannot write rule " + std::to_string(i));
  }
  {
    // One batch for the whole array (65793 sets).
    std::vector<std::uint32_t> keys(compiled->filters.size());
    for (std::uint32_t i = 0; i < keys.size(); ++i) keys[i] = i;
    auto n = static_cast<std::uint32_t>(keys.size());
    if (bpf_map_update_batch(bpf_map__fd(skel_->maps.rule_filters), keys.data(),
                             compiled->filters.data(), &n, nullptr) != 0)
      return Error::kernel(errno, "datapath: cannot write the rule filters");
  }
  // New prefixes first, stale ones after: a lookup meanwhile sees old or new sets.
  auto write_trie = [](int fd,
                       const std::vector<std::pair<ramjet_lpm_key, ramjet_rule_set>>& want) -> int {
    for (const auto& [k, v] : want)
      if (int err = update(fd, k, v); err != 0) return err;
    for (const auto& k : all_keys<ramjet_lpm_key>(fd)) {
      bool keep = false;
      for (const auto& [w, v] : want) keep = keep || std::memcmp(&w, &k, sizeof k) == 0;
      if (!keep) bpf_map_delete_elem(fd, &k);
    }
    return 0;
  };
  if (int err = write_trie(bpf_map__fd(skel_->maps.src_prefixes), compiled->src_prefixes); err)
    return Error::kernel(-err, "datapath: cannot write the source prefixes");
  if (int err = write_trie(bpf_map__fd(skel_->maps.dst_prefixes), compiled->dst_prefixes); err)
    return Error::kernel(-err, "datapath: cannot write the destination prefixes");
  skel_->data->default_action = compiled->default_action;
  skel_->data->default_fallback = compiled->default_fallback;
  std::atomic_ref<std::uint32_t>(skel_->data->rule_count)
      .store(static_cast<std::uint32_t>(compiled->rules.size()));
  std::atomic_ref<__u64>(skel_->data->policy_generation).fetch_add(1);
  {
    std::lock_guard lock(mu_);
    rule_names_.clear();
    for (const auto& r : config.datapath.rules)
      rule_names_.emplace_back(rule_id_for(r.name), r.name);
  }
  spdlog::info("datapath: {} rules, default {}", compiled->rules.size(),
               ramjet_action_names[compiled->default_action]);
  return {};
}

// The validator's limits (config may not include the ABI) are the maps' capacities.
static_assert(config::kDatapathMaxEndpoints + 1 == RAMJET_MAX_ENDPOINTS);
static_assert(config::kDatapathMaxRules == RAMJET_MAX_RULES);

Result<void> Datapath::register_listener(std::uint32_t endpoint_id, int fd, bool v6) {
  std::uint32_t slot = RAMJET_LISTENER_SLOT(endpoint_id, v6);
  std::uint64_t value = static_cast<std::uint64_t>(fd);
  if (bpf_map_update_elem(bpf_map__fd(skel_->maps.listeners), &slot, &value, BPF_ANY) != 0)
    return Error::kernel(errno, "datapath: cannot add the listener of endpoint " +
                                    endpoint_name(endpoint_id) +
                                    " to the sockmap: " + strerror(errno));
  return {};
}

Result<void> Datapath::mark_draining() {
  std::vector<std::uint32_t> ids;
  for (std::uint32_t id = 1; id <= endpoint_names_.size(); ++id) ids.push_back(id);
  auto r = set_engines_draining(bpf_map__fd(skel_->maps.engine_state), ids, true);
  if (!r.ok()) return Error::kernel(r.error().code, "datapath: " + r.error().message);
  spdlog::info(
      "datapath: escalation targets marked draining: new escalated flows take their "
      "on_engine_unavailable fallback");
  return {};
}

Result<void> Datapath::mark_ready() {
  // Every id, not only this config's: a previous run may have had more endpoints.
  std::vector<std::uint32_t> ids;
  for (std::uint32_t id = 0; id < RAMJET_MAX_ENDPOINTS; ++id) ids.push_back(id);
  auto r = set_engines_draining(bpf_map__fd(skel_->maps.engine_state), ids, false);
  if (!r.ok()) return Error::kernel(r.error().code, "datapath: " + r.error().message);
  return {};
}

std::vector<std::string> Datapath::draining() const {
  std::vector<std::string> names;
  auto ids = draining_engines(bpf_map__fd(skel_->maps.engine_state));
  if (!ids.ok()) {
    spdlog::warn("datapath: {}", ids.error().message);
    return names;
  }
  for (std::uint32_t id : *ids) {
    std::string name = endpoint_name(id);
    names.push_back(name.empty() ? "#" + std::to_string(id) : name);
  }
  return names;
}

std::vector<FallbackCount> Datapath::fallback_counts() const {
  auto r = read_fallback_counts(bpf_map__fd(skel_->maps.fallback_counts));
  if (!r.ok()) {
    spdlog::warn("datapath: {}", r.error().message);
    return {};
  }
  return std::move(*r);
}

Result<void> Datapath::block(const Cidr& prefix, std::chrono::milliseconds duration,
                             std::uint32_t tag) {
  std::lock_guard lock(count_mu_);
  auto r = deny_put(bpf_map__fd(skel_->maps.denylist), skel_->data->deny_count, prefix,
                    deadline_after(duration), tag);
  if (!r.ok()) return Error::kernel(r.error().code, "datapath: " + r.error().message);
  return {};
}

Result<void> Datapath::unblock(const Cidr& prefix) {
  std::lock_guard lock(count_mu_);
  auto r = deny_remove(bpf_map__fd(skel_->maps.denylist), skel_->data->deny_count, prefix);
  if (!r.ok()) return Error::kernel(r.error().code, "datapath: " + r.error().message);
  if (!*r) return Error::config(prefix.to_string() + " is not blocked");
  return {};
}

Result<void> Datapath::set_class(const IpAddress& src, const IpAddress& dst, std::uint8_t proto,
                                 std::uint16_t dst_port, std::uint8_t action,
                                 std::chrono::milliseconds duration, std::uint32_t tag) {
  ramjet_class_key key{};
  fill_addr(key.src, src);
  fill_addr(key.dst, dst);
  key.dst_port = htons(dst_port);
  key.family = src.is_v4() ? RAMJET_FAMILY_IPV4 : RAMJET_FAMILY_IPV6;
  key.proto = proto;
  ramjet_class_entry entry{};
  entry.expires_ns = deadline_after(duration);
  entry.tag = tag;
  entry.action = action;
  int fd = bpf_map__fd(skel_->maps.classes);
  std::atomic_ref<std::uint32_t> count(skel_->data->class_count);
  std::lock_guard lock(count_mu_);
  ramjet_class_entry old{};
  bool existed = bpf_map_lookup_elem(fd, &key, &old) == 0;
  if (!existed) count.fetch_add(1);
  if (int err = update(fd, key, entry); err != 0) {
    if (!existed) count.fetch_sub(1);
    return Error::kernel(-err, "datapath: cannot write a flow class");
  }
  return {};
}

std::optional<FlowEntry> Datapath::lookup_flow(const SocketAddress& client,
                                               const SocketAddress& local,
                                               std::uint8_t proto) const {
  ramjet_flow_key key = flow_key_of(client, local, proto);
  ramjet_flow flow{};
  if (bpf_map_lookup_elem(bpf_map__fd(skel_->maps.flows), &key, &flow) != 0) return std::nullopt;
  return FlowEntry{key, flow};
}

FlowId Datapath::next_flow_id() {
  return std::atomic_ref<__u64>(skel_->data->next_flow_id).fetch_add(1) + 1;
}

StatArray Datapath::stats() const {
  StatArray total{};
  int ncpu = libbpf_num_possible_cpus();
  std::vector<ramjet_stat_value> values(static_cast<std::size_t>(ncpu > 0 ? ncpu : 1));
  int fd = bpf_map__fd(skel_->maps.stats);
  for (std::uint32_t i = 0; i < RAMJET_STAT__COUNT; ++i) {
    if (bpf_map_lookup_elem(fd, &i, values.data()) != 0) continue;
    for (const auto& v : values) {
      total[i].packets += v.packets;
      total[i].bytes += v.bytes;
    }
  }
  return total;
}

std::vector<FlowEntry> Datapath::flows() const {
  std::vector<FlowEntry> out;
  auto r = read_flow_batches(bpf_map__fd(skel_->maps.flows), [&](auto keys, auto values) {
    for (std::size_t i = 0; i < keys.size(); ++i) out.push_back({keys[i], values[i]});
    return true;
  });
  if (!r.ok()) spdlog::warn("datapath: {}", r.error().message);
  return out;
}

std::vector<Event> Datapath::recent_events() const {
  std::lock_guard lock(mu_);
  return {events_.begin(), events_.end()};
}

std::string Datapath::endpoint_name(std::uint32_t id) const {
  if (id == 0 || id > endpoint_names_.size()) return {};
  return endpoint_names_[id - 1];
}

std::string Datapath::rule_name(std::uint32_t rule_id) const {
  std::lock_guard lock(mu_);
  for (const auto& [id, name] : rule_names_)
    if (id == rule_id) return name;
  return {};
}

void Datapath::sweeper() {
  std::deque<Event> incoming;
  ring_ = ring_buffer__new(bpf_map__fd(skel_->maps.events), on_event, &incoming, nullptr);
  auto last_sweep = std::chrono::steady_clock::now();
  while (!stopping_) {
    if (ring_) {
      ring_buffer__poll(ring_, 200);
      if (!incoming.empty()) {
        auto now_ns = monotonic_now_ns();
        auto now = std::chrono::system_clock::now();
        for (const auto& e : incoming)
          telemetry::event_feed().publish(event_json(*this, e, now_ns, now).dump());
        std::lock_guard lock(mu_);
        for (auto& e : incoming) events_.push_back(std::move(e));
        while (events_.size() > kEventsKept) events_.pop_front();
        incoming.clear();
      }
    } else {
      std::this_thread::sleep_for(std::chrono::milliseconds(200));
    }
    if (std::chrono::steady_clock::now() - last_sweep >= std::chrono::seconds(1)) {
      sweep_once();
      last_sweep = std::chrono::steady_clock::now();
    }
  }
  if (ring_) ring_buffer__free(ring_);
  ring_ = nullptr;
}

void Datapath::sweep_once() {
  std::uint64_t now = monotonic_now_ns();
  auto ns = [](std::chrono::milliseconds d) { return std::uint64_t(d.count()) * 1'000'000ull; };
  int flows_fd = bpf_map__fd(skel_->maps.flows);
  std::size_t expired = 0;
  std::vector<FlowEntry> table = flows();
  for (const auto& e : table) {
    const ramjet_flow& f = e.flow;
    std::uint64_t idle = now > f.last_seen_ns ? now - f.last_seen_ns : 0;
    std::uint64_t limit;
    if (e.key.proto == IPPROTO_TCP) {
      bool rst = (f.tcp_flags[0] | f.tcp_flags[1]) & RAMJET_TCP_RST;
      bool fins = (f.tcp_flags[0] & RAMJET_TCP_FIN) && (f.tcp_flags[1] & RAMJET_TCP_FIN);
      limit = rst || fins ? ns(settings_.tcp_closed_timeout) : ns(settings_.tcp_timeout);
    } else if (e.key.proto == IPPROTO_UDP) {
      limit = ns(settings_.udp_timeout);
    } else {
      limit = ns(settings_.other_timeout);
    }
    if (idle >= limit && bpf_map_delete_elem(flows_fd, &e.key) == 0) ++expired;
  }
  if (expired) spdlog::debug("datapath: {} idle flows expired", expired);
  flow_entries_.store(table.size() - expired, std::memory_order_relaxed);

  std::lock_guard lock(count_mu_);
  int deny_fd = bpf_map__fd(skel_->maps.denylist);
  std::uint32_t denied = 0;
  for (const auto& k : all_keys<ramjet_lpm_key>(deny_fd)) {
    ramjet_deny_entry d{};
    if (bpf_map_lookup_elem(deny_fd, &k, &d) != 0) continue;
    if (d.expires_ns && d.expires_ns <= now && bpf_map_delete_elem(deny_fd, &k) == 0) continue;
    ++denied;
  }
  int class_fd = bpf_map__fd(skel_->maps.classes);
  std::uint32_t live = 0;
  for (const auto& k : all_keys<ramjet_class_key>(class_fd)) {
    ramjet_class_entry c{};
    if (bpf_map_lookup_elem(class_fd, &k, &c) != 0) continue;
    if (c.expires_ns && c.expires_ns <= now && bpf_map_delete_elem(class_fd, &k) == 0) continue;
    ++live;
  }
  // Under count_mu_ no writer races the scan, so the counts are exact (this
  // also repairs them after `ramjetctl` or a crashed daemon edited the pins).
  std::atomic_ref<std::uint32_t>(skel_->data->deny_count).store(denied);
  std::atomic_ref<std::uint32_t>(skel_->data->class_count).store(live);
}

void Datapath::stop() {
  if (stopped_) return;
  stopped_ = true;
  stopping_ = true;
  if (sweeper_.joinable()) sweeper_.join();
  bool keep = options_.keep_on_exit;
  for (auto& [path, fd] : links_) {
    if (!keep) ::unlink(path.c_str());
    ::close(fd);  // the last reference to an unpinned link: detaches
  }
  links_.clear();
  if (routes_installed_ && !keep)
    remove_policy_route({settings_.escalate_mark, settings_.route_table, 0});
  if (skel_ && !keep) {
    bpf_map* map;
    bpf_object__for_each_map(map, skel_->obj) {
      if (bpf_map__pin_path(map)) bpf_map__unpin(map, nullptr);
    }
    ::unlink((pin_dir_ + "/" + kAbiPinName).c_str());
    std::error_code ec;
    std::filesystem::remove(pin_dir_ + "/links", ec);
    std::filesystem::remove(pin_dir_, ec);
  }
  if (keep && skel_)
    spdlog::info("datapath: left attached with maps pinned in {} (restart mode)", pin_dir_);
  else if (skel_)
    spdlog::info("datapath: detached");
  skel_.reset();
}

}  // namespace ramjet::datapath
