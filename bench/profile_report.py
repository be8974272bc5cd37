"""Summarise a py-spy profile of the gateway (collapsed stacks, `--format raw`).

    python -m bench.run --scenarios 1-c32 --no-peer --py-spy bench/results/gateway.prof
    python -m bench.profile_report bench/results/gateway.prof

Prints where the workers' CPU went: by package (self time), the hottest functions (self
time), and the project's own functions and a few library hot spots (inclusive time: the
function and all it calls). Percentages are of all samples of active (non-idle) threads.
"""

from __future__ import annotations

import argparse
import re
from collections import Counter
from pathlib import Path

FRAME = re.compile(r"^(?P<func>.*?) \((?P<file>[^():]+)(?::(?P<line>\d+))?\)$")

# Library frames worth seeing inclusively (the project's own frames are always shown).
WATCH = [
    "sync_to_async",
    "__call__ (asgiref/sync.py)",
    "close (django/db/backends/base/base.py)",
    "connect (django/db/backends/base/base.py)",
    "execute (psycopg/cursor.py)",
    "_execute_sql",
    "getconn",
    "putconn",
    "compile (django/db/models/sql/compiler.py)",
    "as_sql",
    "get_response_async",
    "__acall__ (django/utils/deprecation.py)",
    "send (django/dispatch/dispatcher.py)",
    "request_started",
    "close_old_connections",
    "create (openai/resources/chat/completions",
    "_process_response",
    "send (httpx2",
    "encode (tiktoken",
    "handle (logging/__init__.py)",
    "log (uvicorn",
    "json",
]


def package(path: str) -> str:
    if "site-packages/" in path:
        return path.split("site-packages/", 1)[1].split("/", 1)[0].removesuffix(".py")
    if "/lib/python3" in path:
        rest = path.split("/lib/python3", 1)[1].split("/", 2)
        return "stdlib:" + (rest[1].removesuffix(".py") if len(rest) > 1 else "?")
    if path.startswith("<"):
        return path
    return "project:" + path.split("/")[-2] if "/" in path else f"? {path}"


def short(frame: str) -> str:
    match = FRAME.match(frame)
    if not match:
        return frame
    path = match["file"]
    for marker in ("site-packages/", "/lib/python3.11/", "/work/main/"):
        if marker in path:
            path = path.split(marker, 1)[1]
    return f"{match['func']} ({path})"


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("profile")
    parser.add_argument("--top", type=int, default=25)
    parser.add_argument(
        "--with-startup",
        action="store_true",
        help="keep stacks inside imports (worker boot: loading the app and the encodings)",
    )
    args = parser.parse_args(argv)

    stacks: list[tuple[list[str], int]] = []
    for line in Path(args.profile).read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        if not stack or not count.isdigit():
            continue
        frames = [f for f in stack.split(";") if not f.startswith(("process ", "thread "))]
        if not args.with_startup and any("<frozen importlib" in f for f in frames):
            continue
        stacks.append((frames, int(count)))
    total = sum(c for _, c in stacks) or 1

    self_fn, self_pkg, inclusive = Counter(), Counter(), Counter()
    for frames, count in stacks:
        if not frames:
            continue
        leaf = frames[-1]
        match = FRAME.match(leaf)
        self_fn[short(leaf)] += count
        self_pkg[package(match["file"]) if match else leaf] += count
        for name in {short(f) for f in frames}:  # once per stack: recursion is not double-counted
            inclusive[name] += count

    def show(title: str, counter: Counter, n: int, keep=lambda name: True) -> None:
        print(f"\n{title}")
        for name, count in [(k, v) for k, v in counter.most_common() if keep(k)][:n]:
            print(f"  {100 * count / total:5.1f}%  {name}")

    print(
        f"{total} samples of the thread holding the GIL, all gateway workers (py-spy --gil)"
        + ("" if args.with_startup else "; worker start-up (imports) left out")
    )
    show("Self time by package", self_pkg, args.top)
    show("Hottest functions (self time)", self_fn, args.top)
    project = ("gateway/", "billing/", "dialogs/", "llm_models/", "agents/")
    show("Project functions (inclusive)", inclusive, args.top, lambda name: any(f"({p}" in name for p in project))
    show(
        "Library hot spots (inclusive)",
        inclusive,
        args.top,
        lambda name: any(w in name for w in WATCH) and not any(f"({p}" in name for p in project),
    )


if __name__ == "__main__":
    main()
