"""Shared by the benchmark scripts: each one owns a "## ..." section of benchmarks/RESULTS.md."""

from __future__ import annotations

import os

RESULTS_MD = os.path.join(os.path.dirname(os.path.abspath(__file__)), "RESULTS.md")


def replace_section(section: str, text: str, path: str = RESULTS_MD) -> None:
    """Replace the section headed ``section`` (up to the next "## " heading) by ``text``, or
    append it; the other sections are left as they are."""
    old = open(path).read() if os.path.exists(path) else "# Benchmark results\n"
    text = text.rstrip("\n") + "\n"
    if section in old:
        start = old.index(section)
        nxt = old.find("\n## ", start + len(section))
        new = old[:start] + text + (old[nxt:] if nxt >= 0 else "")
    else:
        new = old.rstrip("\n") + "\n\n" + text
    tmp = path + ".tmp"
    with open(tmp, "w") as fh:
        fh.write(new)
    os.replace(tmp, path)
