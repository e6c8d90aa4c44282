// Benchmark traffic generator (not a test): sends 60-byte IPv4/UDP frames out of
// a device as xdp_frames, from BPF_PROG_TEST_RUN in live-frames mode (kernel >=
// 5.18; the approach of xdp-tools' xdp-trafficgen), so a veth peer receives raw
// frames the way XDP on a NIC does. Runs the program in a loop on the calling
// CPU until the time is up and prints one JSON line: {"sent": N, "seconds": S}.
// `sent` counts frames the program redirected (the test run's repeat count);
// a full peer ring drops some of them, which the receiver's count shows.
//
//   xdp_livegen DEV SECONDS FLOWS SRC_MAC DST_MAC SRC_IP DST_IP
#include <arpa/inet.h>
#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include <linux/bpf.h>
#include <net/if.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>

#include "packet_builder.h"
#include "xdp_livegen.skel.h"

using namespace ramjet::test;

namespace {

bool parse_mac(const char* text, Mac& mac) {
  unsigned b[6];
  if (std::sscanf(text, "%x:%x:%x:%x:%x:%x", &b[0], &b[1], &b[2], &b[3], &b[4], &b[5]) != 6)
    return false;
  for (int i = 0; i < 6; i++) mac[size_t(i)] = uint8_t(b[i]);
  return true;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc != 8) {
    std::fprintf(stderr, "usage: %s DEV SECONDS FLOWS SRC_MAC DST_MAC SRC_IP DST_IP\n", argv[0]);
    return 2;
  }
  unsigned ifindex = if_nametoindex(argv[1]);
  double seconds = std::atof(argv[2]);
  unsigned flows = unsigned(std::atoi(argv[3]));
  Mac src_mac{}, dst_mac{};
  if (!ifindex || seconds <= 0 || flows == 0 || !parse_mac(argv[4], src_mac) ||
      !parse_mac(argv[5], dst_mac)) {
    std::fprintf(stderr, "xdp_livegen: bad arguments (device %s)\n", argv[1]);
    return 2;
  }
  Bytes frame =
      PacketBuilder().eth(dst_mac, src_mac).ipv4(argv[6], argv[7]).udp(10000, 9).payload(18).build();
  put16(&frame[14 + 20 + 6], 0);  // no UDP checksum: the program rewrites the source port

  xdp_livegen_bpf* skel = xdp_livegen_bpf__open();
  if (!skel) {
    std::fprintf(stderr, "xdp_livegen: cannot open the generator program\n");
    return 1;
  }
  skel->rodata->out_ifindex = ifindex;
  skel->rodata->flows = flows;
  std::memcpy((void*)skel->rodata->header, frame.data(), sizeof(skel->rodata->header));
  if (xdp_livegen_bpf__load(skel) != 0) {
    std::fprintf(stderr, "xdp_livegen: cannot load the generator program\n");
    return 1;
  }
  int prog_fd = bpf_program__fd(skel->progs.xdp_livegen);

  constexpr uint32_t kRepeat = 1 << 16;
  uint64_t sent = 0;
  auto start = std::chrono::steady_clock::now();
  double elapsed = 0;
  while (elapsed < seconds) {
    LIBBPF_OPTS(bpf_test_run_opts, opts);
    opts.data_in = frame.data();
    opts.data_size_in = uint32_t(frame.size());
    opts.repeat = kRepeat;
    opts.flags = BPF_F_TEST_XDP_LIVE_FRAMES;
    opts.batch_size = 256;  // the kernel's maximum: one flush per 256 frames
    if (int err = bpf_prog_test_run_opts(prog_fd, &opts); err) {
      std::fprintf(stderr, "xdp_livegen: test run: %s\n", std::strerror(-err));
      return 1;
    }
    sent += kRepeat;
    elapsed = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  }
  std::printf("{\"sent\": %llu, \"seconds\": %.3f}\n", (unsigned long long)sent, elapsed);
  xdp_livegen_bpf__destroy(skel);
  return 0;
}
