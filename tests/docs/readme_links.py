#!/usr/bin/env python3
"""README links nothing outside the repository (issue 10, item 11).

Every Markdown link must be a relative path to a file or directory of this
repository, and no prose (outside code blocks and code spans) may point past its
root ("../") or to a web address: a reader of the repository alone must be able
to follow every reference. Exit 1 listing each offending line.

  readme_links.py REPO_ROOT [FILE ...]   (default FILE: README.md)
"""
import re
import sys
from pathlib import Path

LINK = re.compile(r"\[[^\]]*\]\(([^)\s]+)(?:\s+\"[^\"]*\")?\)")
CODE_SPAN = re.compile(r"`[^`]*`")


def problems(root: Path, doc: Path):
    in_fence = False
    for number, line in enumerate(doc.read_text(encoding="utf-8").splitlines(), 1):
        if line.lstrip().startswith("```"):
            in_fence = not in_fence
            continue
        if in_fence:
            continue
        for target in LINK.findall(line):
            path = target.split("#", 1)[0]
            if re.match(r"^[a-z][a-z0-9+.-]*:", target, re.I):
                yield number, f"link to {target}: outside the repository"
            elif path.startswith("/"):
                yield number, f"link to {target}: an absolute path"
            elif path:
                resolved = (doc.parent / path).resolve()
                if root not in resolved.parents and resolved != root:
                    yield number, f"link to {target}: outside the repository"
                elif not resolved.exists():
                    yield number, f"link to {target}: no such file in the repository"
        # References in prose and code spans alike: a path past the root, a web address.
        text = LINK.sub("", line)
        if re.search(r"(^|[\s`(])\.\./", text):
            yield number, f"points outside the repository: {line.strip()}"
        prose = CODE_SPAN.sub("", text)
        if re.search(r"\bhttps?://", prose):
            yield number, f"web address in prose: {line.strip()}"


def main(argv):
    if len(argv) < 2:
        print(__doc__, file=sys.stderr)
        return 2
    root = Path(argv[1]).resolve()
    docs = argv[2:] or ["README.md"]
    bad = [(doc, n, why) for doc in docs for n, why in problems(root, root / doc)]
    for doc, n, why in bad:
        print(f"{doc}:{n}: {why}")
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
