# ramjet: the one entry point. `make run` and `make test` do all the set-up on a
# fresh Debian 12 machine (as root, or with sudo available).
#
#   make            build (BUILD=release: -O2 -g; BUILD=asan: ASan+UBSan)
#   make run        install what is missing, build, run ramjetd on config/ramjet.yaml
#   make test       install, build, run unit (release + asan), integration (release, and a
#                   subset under asan) and eBPF tests, then the fuzz targets briefly
#   make bench      side-by-side benchmarks against peers (not part of test)
#   make fuzz       build the libFuzzer targets and run each for FUZZ_SECONDS
#   make format     clang-format every C/C++ source

BUILD ?= release
BUILD_DIR := build/$(BUILD)
JOBS ?= $(shell nproc)
FUZZ_SECONDS ?= 30
TEST_FUZZ_SECONDS ?= 10   # the short fuzz smoke inside `make test`
CONFIG ?= config/ramjet.yaml

# Debian packages the build, the tests and the benchmarks use.
DEB_PACKAGES := g++ cmake ninja-build pkg-config clang llvm libclang-rt-14-dev \
  liburing-dev libc-ares-dev libyaml-cpp-dev libspdlog-dev libfmt-dev nlohmann-json3-dev \
  libcli11-dev libgtest-dev libgmock-dev libbenchmark-dev libcrypt-dev help2man systemd logrotate man-db libdw-dev \
  libbpf-dev bpftool libelf-dev zlib1g-dev \
  nodejs socat iperf3 curl python3 python3-prometheus-client procps iproute2 openssl \
  python3-scapy ethtool nftables tmux iputils-ping \
  android-libboringssl-dev libnghttp2-dev nghttp2-client python3-h2 nginx-light \
  libngtcp2-dev libngtcp2-crypto-gnutls-dev libnghttp3-dev libgnutls28-dev ngtcp2-client \
  chromium-headless-shell haproxy bind9-dnsutils
# Peers and load generators for `make bench` only.
DEB_BENCH_PACKAGES := squid tinyproxy libnginx-mod-stream wrk netsniff-ng

ifeq ($(BUILD),asan)
CMAKE_FLAGS := -DCMAKE_BUILD_TYPE=RelWithDebInfo -DRAMJET_SANITIZE=ON
else
CMAKE_FLAGS := -DCMAKE_BUILD_TYPE=RelWithDebInfo
endif
# RelWithDebInfo is -O2 -g with CMake's GCC defaults.

SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)

# Skips are never silent. Every test stage (unit, BPF, integration) appends one line
# per skipped test, with the reason, to RAMJET_SKIP_LOG; `make test` prints the list
# last. .ci/run (root, CI) sets RAMJET_NO_SKIP=1: there a skip fails instead.
export RAMJET_SKIP_LOG ?= $(CURDIR)/build/skipped.txt
RAMJET_NO_SKIP ?=
# sudo resets the environment: what the tests under it must see.
SKIP_VARS = RAMJET_SKIP_LOG=$(RAMJET_SKIP_LOG) RAMJET_NO_SKIP=$(RAMJET_NO_SKIP)

.PHONY: all build deps deps-deb deps-npm run test test-unit test-asan test-integration \
        test-bpf bpf bench bench-bpf deps-bench install-missing fuzz format clean report-skips test-stages \
        install

all: build

deps: deps-deb deps-npm

# Installs only what is missing; a no-op (one dpkg query) when everything is there.
deps-deb:
	@$(MAKE) --no-print-directory install-missing PACKAGES="$(DEB_PACKAGES)"

deps-bench:
	@$(MAKE) --no-print-directory install-missing PACKAGES="$(DEB_BENCH_PACKAGES)"

install-missing:
	@missing=$$(for p in $(PACKAGES); do \
	    dpkg-query -W -f='$${Status}\n' $$p 2>/dev/null | grep -q '^install ok installed' || echo $$p; \
	  done); \
	command -v npm >/dev/null || missing="$$missing npm"; \
	if [ -n "$$missing" ]; then \
	  echo "installing:" $$missing; \
	  $(SUDO) apt-get update -q && \
	  DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -q --no-install-recommends $$missing; \
	fi

# Reinstalls the test framework's packages only when the lockfile changed.
deps-npm:
	@cd tests/integration && \
	  if [ ! -f node_modules/.package-lock.json ] || [ package-lock.json -nt node_modules/.package-lock.json ]; then \
	    npm ci --no-audit --no-fund; \
	  fi

build: deps-deb
	@cmake -S . -B $(BUILD_DIR) -G Ninja $(CMAKE_FLAGS) >/dev/null
	@cmake --build $(BUILD_DIR) -j $(JOBS)

# ramjetd, ramjetctl, their man pages, the systemd unit, the default config (an existing
# one is kept), the bash completion and the logrotate stanza (config/CMakeLists.txt says
# where each goes). `make install PREFIX=/opt/ramjet DESTDIR=/tmp/stage` for a staged tree.
PREFIX ?= /usr/local
DESTDIR ?=
install: build
	DESTDIR="$(DESTDIR)" cmake --install $(BUILD_DIR) --prefix "$(PREFIX)"

# No npm and no root needed: without root the admin socket goes under $XDG_RUNTIME_DIR.
run: build
	$(BUILD_DIR)/bin/ramjetd --config $(CONFIG)

# The skip list is printed even when a stage failed.
test: deps
	@mkdir -p $(dir $(RAMJET_SKIP_LOG)) && : > $(RAMJET_SKIP_LOG)
	@$(MAKE) --no-print-directory test-stages; rc=$$?; \
	  $(MAKE) --no-print-directory report-skips; exit $$rc

test-stages:
	@$(MAKE) --no-print-directory build BUILD=release
	@$(MAKE) --no-print-directory test-unit BUILD=release
	@$(MAKE) --no-print-directory test-integration BUILD=release
	@$(MAKE) --no-print-directory test-bpf
	@$(MAKE) --no-print-directory test-asan
	@$(MAKE) --no-print-directory fuzz FUZZ_SECONDS=$(TEST_FUZZ_SECONDS)

# The loud end of `make test`: what did not run, and why.
report-skips:
	@if [ -s "$(RAMJET_SKIP_LOG)" ]; then \
	  echo; echo "================================================================"; \
	  echo "SKIPPED - these tests did NOT run (a skip is not a pass):"; \
	  sort -u "$(RAMJET_SKIP_LOG)" | sed 's/^/  /'; \
	  echo "$$(sort -u "$(RAMJET_SKIP_LOG)" | wc -l) skipped. As root (CI, RAMJET_NO_SKIP=1) each would fail."; \
	  echo "================================================================"; \
	else \
	  echo "make test: every test ran (nothing skipped)"; \
	fi

test-unit:
	cd $(BUILD_DIR) && ctest --output-on-failure -j $(JOBS)

# The sanitizer pass: every unit test, and the integration cases whose code paths juggle
# coroutine lifetimes most (HTTP/2 both ways, TLS, the HTTP/1.1 forward proxy, UDP sessions
# and their multishot receive buffers, IP flows waiting for their hook, QUIC connections and
# their HTTP/3 sessions); a sanitizer report
# makes ramjetd exit non-zero, which fails the test at teardown.
ASAN_INTEGRATION := h2_upstream h2_upstream_onramp h2_forward h2_connect tls_onramp http_forward \
  udp_onramp ip_onramp quic h3 h3_connect tracing

test-asan: deps-npm
	@$(MAKE) --no-print-directory build BUILD=asan
	@$(MAKE) --no-print-directory test-unit BUILD=asan
	cd tests/integration && RAMJET_BUILD_DIR=$(CURDIR)/build/asan node --import tsx --test \
	  --test-concurrency=2 $(patsubst %,cases/%.test.ts,$(ASAN_INTEGRATION))

test-integration: deps-npm
	cd tests/integration && RAMJET_BUILD_DIR=$(CURDIR)/$(BUILD_DIR) npm test

bench: deps deps-bench build
	python3 bench/tcp_relay.py --build-dir $(BUILD_DIR)
	python3 bench/http_forward.py --build-dir $(BUILD_DIR)
	/usr/bin/python3 bench/tls.py --build-dir $(BUILD_DIR)
	python3 bench/h3.py --build-dir $(BUILD_DIR)
	python3 bench/tcp_latency.py --build-dir $(BUILD_DIR)
	python3 bench/udp_onramp.py --build-dir $(BUILD_DIR)
	python3 bench/proxy_protocol.py --build-dir $(BUILD_DIR)
	$(SUDO) python3 bench/xdp_forward.py --build-dir $(BUILD_DIR)
	$(SUDO) python3 bench/veth_bulk_tcp.py --build-dir $(BUILD_DIR)
	$(SUDO) python3 bench/ip_onramp.py --build-dir $(BUILD_DIR)
	$(SUDO) python3 bench/flows_list.py --build-dir $(BUILD_DIR)
	$(SUDO) python3 bench/escalation_latency.py --build-dir $(BUILD_DIR)
	@$(MAKE) --no-print-directory bench-bpf

# The eBPF programs (clang -target bpf) and their skeletons, under bpf/build/.
bpf: deps-deb
	@$(MAKE) --no-print-directory -C bpf

# BPF_PROG_TEST_RUN tables; needs root (CAP_BPF, and a private netns for the fast path).
test-bpf: deps-deb
	$(SUDO) $(MAKE) --no-print-directory -C tests/bpf test $(SKIP_VARS)

bench-bpf: deps-deb
	$(SUDO) $(MAKE) --no-print-directory -C tests/bpf bench

fuzz: deps-deb
	@cmake -S . -B build/fuzz -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo -DRAMJET_FUZZ=ON \
	  -DCMAKE_C_COMPILER=clang -DCMAKE_CXX_COMPILER=clang++ >/dev/null
	@cmake --build build/fuzz -j $(JOBS) --target fuzz_targets
	tests/fuzz/run.sh build/fuzz/bin $(FUZZ_SECONDS)

format:
	@find bpf userspace hooks tools tests bench -name '*.h' -o -name '*.cc' -o -name '*.c' \
	  | grep -v node_modules | xargs clang-format -i

clean:
	rm -rf build bpf/build tests/bpf/build
