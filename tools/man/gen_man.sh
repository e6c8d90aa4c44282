#!/bin/bash
# Writes a man page for a ramjet binary from its own --help and --version (help2man),
# so the page cannot drift from the CLI. For a binary with subcommands (ramjetctl), each
# subcommand's --help becomes a subsection of COMMANDS.
#   gen_man.sh BINARY SECTION "one-line description" OUT
set -euo pipefail
bin=$1 section=$2 description=$3 out=$4
name=$(basename "$bin")
include=$(mktemp)
trap 'rm -f "$include"' EXIT

# roff-safe text: backslashes escaped, lines that start with . or ' protected.
roff_text() { sed -e 's/\\/\\e/g' -e "s/^\([.']\)/\\\\\&\1/"; }

subcommands=$("$bin" --help | awk '/^Subcommands:/ {on = 1; next} on && /^  [a-z]/ {print $1}')
if [ -n "$subcommands" ]; then
  echo '[COMMANDS]' >>"$include"
  for sub in $subcommands; do
    printf '.SS "%s %s"\n.nf\n' "$name" "$sub" >>"$include"
    "$bin" "$sub" --help | roff_text >>"$include"
    printf '.fi\n' >>"$include"
  done
fi
cat >>"$include" <<SEE
[SEE ALSO]
.BR ramjetd (8),
.BR ramjetctl (8).
The README and docs/ of the ramjet source tree, and docs/operations.md for install,
restart, upgrade and rollback.
SEE
help2man --no-info --section="$section" --name="$description" --include="$include" \
  --output="$out" "$bin"
