#!/usr/bin/python3
"""The layering of DESIGN.md, checked (ctest layers.*).

  check_layers.py includes ROOT [--cmake name=dep,dep ...]
      Every #include "..." of userspace/ and tools/ramjetctl/ names a header of its
      own layer or of a layer below it; the layers' link dependencies declared in
      userspace/CMakeLists.txt (passed with --cmake) are allowed by the same table.
  check_layers.py binary FILE LAYER...
      FILE holds no symbol of the namespaces ramjet::LAYER (ramjetctl: no daemon).

Exit status 1 with one line per violation.
"""
import os
import re
import subprocess
import sys

# What each layer may use (transitively closed below). The one copy of this table;
# DESIGN.md states it in prose, docs/decisions.md ("Layers") draws it.
ALLOWED = {
    "hooks": [],
    "config": ["hooks"],
    "runtime": ["hooks"],
    "proxy_protocol": ["hooks"],
    "dns": ["runtime"],
    "egress": ["runtime"],
    "tls": ["runtime", "config"],
    "http": ["runtime", "config"],
    "telemetry": ["runtime"],
    "datapath": ["runtime", "config", "telemetry"],
    "quic": ["tls", "datapath"],
    "proxy": ["dns", "egress", "tls", "http", "telemetry", "datapath", "proxy_protocol", "quic"],
    "admin": ["http", "telemetry", "datapath"],
    "app": ["proxy", "admin"],
    # Not libraries of libramjet, but held to it: the CLI links admin and datapath.
    "ramjetctl": ["admin", "datapath"],
    "ramjetd": ["app"],
}

LAYER_DIRS = ["config", "runtime", "dns", "egress", "tls", "http", "telemetry", "datapath",
              "proxy_protocol", "quic", "proxy", "admin", "app"]
# Public headers under userspace/include/ramjet/ and elsewhere, by owner.
HEADER_OWNERS = [
    ("ramjet/config/", "config"),
    ("ramjet/engine/", "proxy"),
    ("ramjet/bootstrap.h", "app"),
    ("ramjet/abi/", "datapath"),  # bpf/include: the ABI, exported by the datapath only
    ("datapath.skel.h", "datapath"),
    ("tun_handoff.skel.h", "datapath"),
    ("quic_reuseport.skel.h", "datapath"),
    ("ramjet/", "hooks"),  # hooks/include: std + value types, below everything
]

INCLUDE_RE = re.compile(r'^\s*#\s*include\s+"([^"]+)"', re.M)


def closure():
    out = {}

    def below(layer, seen):
        for d in ALLOWED[layer]:
            if d not in seen:
                seen.add(d)
                below(d, seen)
        return seen

    for layer in ALLOWED:
        out[layer] = below(layer, {layer})
    return out


def owner_of(include, including_file):
    first = include.split("/", 1)[0]
    if "/" in include and first in LAYER_DIRS:
        return first
    for prefix, owner in HEADER_OWNERS:
        if include == prefix or (prefix.endswith("/") and include.startswith(prefix)):
            return owner
    if os.path.exists(os.path.join(os.path.dirname(including_file), include)):
        return None  # beside the including file: its own layer
    return "?"


def sources(root):
    """(layer, path) for every C++ file the layers and their users are made of."""
    roots = [(os.path.join(root, "userspace/src", d), d) for d in LAYER_DIRS]
    roots += [
        (os.path.join(root, "userspace/include/ramjet/config"), "config"),
        (os.path.join(root, "userspace/include/ramjet/engine"), "proxy"),
        (os.path.join(root, "userspace/include/ramjet/bootstrap.h"), "app"),
        (os.path.join(root, "userspace/ramjetd"), "ramjetd"),
        (os.path.join(root, "tools/ramjetctl"), "ramjetctl"),
    ]
    for top, layer in roots:
        if os.path.isfile(top):
            yield layer, top
            continue
        for dirpath, _, files in os.walk(top):
            for f in sorted(files):
                if f.endswith((".h", ".cc")):
                    yield layer, os.path.join(dirpath, f)


def check_includes(root, cmake_deps):
    allowed = closure()
    errors = []
    for layer, path in sources(root):
        with open(path, encoding="utf-8") as f:
            text = f.read()
        for m in INCLUDE_RE.finditer(text):
            inc = m.group(1)
            owner = owner_of(inc, path)
            if owner is None:
                continue
            line = text.count("\n", 0, m.start()) + 1
            rel = os.path.relpath(path, root)
            if owner == "?":
                errors.append(f'{rel}:{line}: #include "{inc}": no layer owns this header')
            elif owner not in allowed[layer]:
                errors.append(f'{rel}:{line}: #include "{inc}": layer {layer} must not use '
                              f'{owner} (it may use: {", ".join(sorted(allowed[layer] - {layer}))})')
    for spec in cmake_deps:
        name, _, deps = spec.partition("=")
        for d in filter(None, deps.split(",")):
            if d not in allowed.get(name, set()):
                errors.append(f"userspace/CMakeLists.txt: ramjet_{name} links ramjet_{d}, "
                              f"which layer {name} must not use")
    return errors


def check_binary(path, forbidden):
    out = subprocess.run(["nm", "-C", "--defined-only", path], capture_output=True, text=True,
                         check=True).stdout
    # The symbol's own name: what precedes its parameter list (parameters may name
    # types of any layer).
    names = [l.split(" ", 2)[-1].split("(", 1)[0] for l in out.splitlines()]
    errors = []
    for layer in forbidden:
        hits = [n for n in names if f"ramjet::{layer}::" in n]
        if hits:
            errors.append(f"{path}: holds {len(hits)} symbols of ramjet::{layer}, e.g. "
                          f"{hits[0]}")
    return errors


def main(argv):
    if len(argv) >= 2 and argv[0] == "includes":
        cmake = []
        if "--cmake" in argv:
            cmake = argv[argv.index("--cmake") + 1:]
        errors = check_includes(argv[1], cmake)
    elif len(argv) >= 3 and argv[0] == "binary":
        errors = check_binary(argv[1], argv[2:])
    else:
        print(__doc__, file=sys.stderr)
        return 2
    for e in errors:
        print(e)
    return 1 if errors else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
