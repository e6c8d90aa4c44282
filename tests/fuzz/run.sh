#!/usr/bin/env bash
# Runs every fuzz target over its seed corpus for N seconds each; fails on a crash.
set -euo pipefail
bin_dir=$1
seconds=${2:-30}
here=$(cd "$(dirname "$0")" && pwd)
for target in "$bin_dir"/*_fuzz; do
  name=$(basename "$target" _fuzz)
  work=$(mktemp -d)
  cp -r "$here/corpus/$name/." "$work/" 2>/dev/null || true
  echo "fuzz: $name for ${seconds}s"
  "$target" -max_total_time="$seconds" -print_final_stats=1 "$work" 2>&1 | tail -n 5
  rm -rf "$work"
done
