#!/bin/bash
# `make install`'s tree, checked as an operator would use it (ctest install.tree):
#  - a private prefix gets everything under it, the unit's paths point into it, and
#    `systemd-analyze verify` accepts the unit (it checks that ExecStart exists and runs
#    man for Documentation=);
#  - the installed ramjetd checks the installed config; the man pages render and carry
#    each ramjetctl command; logrotate parses the stanza;
#  - a second install keeps an operator's edited config;
#  - the system prefix /usr/local, staged with DESTDIR, puts the config and logrotate
#    stanza under /etc and the unit under /usr/local/lib/systemd/system.
#   install_test.sh BUILD_DIR
set -euo pipefail
build=$1
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
fail() { echo "FAIL: $*" >&2; exit 1; }

prefix=$tmp/prefix
cmake --install "$build" --prefix "$prefix" >"$tmp/install.log" || { cat "$tmp/install.log"; fail "cmake --install"; }
for f in bin/ramjetd bin/ramjetctl share/man/man8/ramjetd.8 share/man/man8/ramjetctl.8 \
         share/bash-completion/completions/ramjetctl lib/systemd/system/ramjetd.service \
         etc/ramjet/ramjet.yaml etc/logrotate.d/ramjet; do
  [ -s "$prefix/$f" ] || fail "$f not installed under the prefix"
done
unit=$prefix/lib/systemd/system/ramjetd.service
grep -qx "ExecStart=$prefix/bin/ramjetd --config $prefix/etc/ramjet/ramjet.yaml" "$unit" ||
  fail "ExecStart not rewritten for the prefix: $(grep ExecStart= "$unit")"
grep -v '^#' "$unit" | grep -q '/usr/local' && fail "the unit still names /usr/local: $(grep /usr/local "$unit")"
grep -qx 'Type=notify' "$unit" || fail "the unit is not Type=notify"
grep -qx 'WatchdogSec=30s' "$unit" || fail "the unit has no watchdog"
MANPATH=$prefix/share/man systemd-analyze verify "$unit" || fail "systemd-analyze verify"

"$prefix/bin/ramjetd" --check-config "$prefix/etc/ramjet/ramjet.yaml" >/dev/null ||
  fail "the installed ramjetd rejects the installed config"
"$prefix/bin/ramjetctl" --version | grep -qx 'ramjetctl [0-9.]*' || fail "ramjetctl --version"
page=$(MANWIDTH=100 man -l "$prefix/share/man/man8/ramjetctl.8" 2>/dev/null)
for cmd in status stats flows block reload drain; do
  grep -q "ramjetctl $cmd" <<<"$page" || fail "ramjetctl.8 lacks the $cmd command"
done
MANWIDTH=100 man -l "$prefix/share/man/man8/ramjetd.8" 2>/dev/null | grep -q -- '--check-config' ||
  fail "ramjetd.8 lacks --check-config"
logrotate --debug --state "$tmp/logrotate.state" "$prefix/etc/logrotate.d/ramjet" >/dev/null 2>&1 ||
  fail "logrotate does not parse the stanza"
bash -n "$prefix/share/bash-completion/completions/ramjetctl" || fail "bash completion"

echo "# edited by the operator" >>"$prefix/etc/ramjet/ramjet.yaml"
cmake --install "$build" --prefix "$prefix" >"$tmp/install2.log"
grep -q 'edited by the operator' "$prefix/etc/ramjet/ramjet.yaml" || fail "a reinstall replaced the config"
grep -q 'Kept: ' "$tmp/install2.log" || fail "a reinstall did not say it kept the config"

DESTDIR=$tmp/stage cmake --install "$build" --prefix /usr/local >/dev/null
for f in usr/local/bin/ramjetd usr/local/lib/systemd/system/ramjetd.service \
         etc/ramjet/ramjet.yaml etc/logrotate.d/ramjet usr/local/share/man/man8/ramjetd.8; do
  [ -s "$tmp/stage/$f" ] || fail "$f not staged for /usr/local"
done
grep -qx 'ExecStart=/usr/local/bin/ramjetd --config /etc/ramjet/ramjet.yaml' \
  "$tmp/stage/usr/local/lib/systemd/system/ramjetd.service" || fail "the /usr/local unit"
echo "install tree ok"
