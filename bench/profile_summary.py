"""Reads py-spy's collapsed stacks and says what dominates, in words and a small SVG.

A flamegraph is for looking at; a note to the relay's owner needs the same facts in
text: where the samples end (self time, by function and by area) and which calls
hold most of the time below them (inclusive). py-spy sees Python frames only (no
--native): time inside C code — OpenSSL, the event loop, sqlite3 — is charged to the
Python frame that called it, so `_ssl._SSLSocket.read` shows up as its caller.

    python bench/profile_summary.py PROFILE.collapsed.txt [--svg OUT.svg]
"""

from __future__ import annotations

import argparse
import html
import re
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

_LINE = re.compile(r"^(?P<stack>.*) (?P<count>\d+)$")
_FRAME = re.compile(r"^(?P<func>.*?) \((?P<file>.*?)(?::\d+)?\)$")


def read_stacks(path: Path) -> Iterator[tuple[str, list[str], int]]:
    """(thread name, frames root first, samples) per line of `py-spy record --threads -f raw`."""
    for line in path.read_text(errors="replace").splitlines():
        match = _LINE.match(line.strip())
        if not match:
            continue
        thread = "?"
        frames = []
        for frame in match["stack"].split(";"):
            if frame.startswith("thread ("):
                thread = _thread_name(frame)
            elif not frame.startswith("process "):
                frames.append(_name(frame))
        yield thread, frames, int(match["count"])


def _thread_name(frame: str) -> str:
    """`thread (123): ThreadPoolExecutor-0_1` -> `ThreadPoolExecutor-0` (pool threads merged)."""
    name = frame.split(":", 1)[1].strip() if ":" in frame else frame
    return re.sub(r"_\d+$", "", name)


def _name(frame: str) -> str:
    """`func (path/to/module.py:123)` -> `func (to/module.py)`: lines merged, paths shortened."""
    match = _FRAME.match(frame)
    if not match:
        return frame
    return f"{match['func']} ({_short_path(match['file'])})"


def _short_path(path: str) -> str:
    """py-spy already prints module-relative paths for installed code; trim the rest."""
    for marker in ("site-packages/", "/src/", "lib/python3.11/", "lib/python3.12/"):
        if marker in path:
            return path.split(marker, 1)[1]
    return path.rsplit("/", 2)[-1] if path.startswith("/") else path


def area(frame: str) -> str:
    """A coarse bucket for self time: the module (three path components at most)."""
    match = re.search(r"\((.*)\)$", frame)
    path = match.group(1) if match else frame
    return "/".join(path.split("/")[:3])


# The event loop's and the CLI's own frames hold (nearly) every sample; listing them says
# nothing. Frames above 95 % of their thread's samples are dropped for the same reason.
_SCAFFOLDING = re.compile(
    r"^(<module>|run|main|mitmdump|cli|invoke|run_async|record|Runner\.run|BaseEventLoop\.run_\w+"
    r"|BaseEventLoop\._run_once|Handle\._run|Thread\.\w+|_worker|Context\.invoke|Command\.\w+"
    r"|Group\.invoke|pass_obj\.<locals>\.new_func) "
)


def summarize(path: Path, top: int = 20) -> dict[str, Any]:
    total = 0
    self_time: Counter[str] = Counter()
    inclusive: Counter[str] = Counter()
    areas: Counter[str] = Counter()
    threads: Counter[str] = Counter()
    per_thread: dict[str, Counter[str]] = {}
    for thread, frames, count in read_stacks(path):
        if not frames:
            continue
        total += count
        threads[thread] += count
        self_time[frames[-1]] += count
        areas[area(frames[-1])] += count
        seen = per_thread.setdefault(thread, Counter())
        for frame in set(frames):
            inclusive[frame] += count
            seen[frame] += count

    def scaffolding(frame: str) -> bool:
        if _SCAFFOLDING.match(frame):
            return True
        return any(c[frame] >= 0.95 * threads[t] for t, c in per_thread.items() if frame in c)

    def pct(counter: Counter[str], n: int) -> list[tuple[str, float]]:
        return [(k, round(100 * v / total, 1)) for k, v in counter.most_common(n)] if total else []

    return {
        "samples": total,
        "threads": pct(threads, 8),
        "self": pct(self_time, top),
        "inclusive": pct(Counter({k: v for k, v in inclusive.items() if not scaffolding(k)}), top),
        "areas": pct(areas, 15),
    }


def render(profiles: dict[str, dict[str, Any]]) -> str:
    lines = ["## Profiles (py-spy record --threads --nonblocking --rate 250)", ""]
    for name, entry in profiles.items():
        s = entry["summary"]
        lines += [f"### {name} — {s['samples']:,} samples; stacks: `{entry['collapsed']}`", ""]
        lines.append("Samples by thread: " + ", ".join(f"{t} {p}%" for t, p in s["threads"]))
        lines += ["", "Self time by module: " + ", ".join(f"{a} {p}%" for a, p in s["areas"])]
        lines += ["", "| self % | function (file) |", "| ---: | --- |"]
        lines += [f"| {p} | `{f}` |" for f, p in s["self"][:15]]
        lines += ["", "| inclusive % | function (file) |", "| ---: | --- |"]
        lines += [f"| {p} | `{f}` |" for f, p in s["inclusive"][:20]]
        lines.append("")
    return "\n".join(lines)


def to_svg(path: Path, out: Path, width: int = 1600, row: int = 16) -> None:
    """A plain flamegraph (root at the bottom) from collapsed stacks; no JavaScript."""
    tree: dict[str, Any] = {"n": 0, "kids": {}}
    for thread, frames, count in read_stacks(path):
        frames = [f"thread {thread}", *frames]
        node = tree
        node["n"] += count
        for frame in frames:
            node = node["kids"].setdefault(frame, {"n": 0, "kids": {}})
            node["n"] += count
    total = tree["n"] or 1
    rects: list[str] = []
    depth_max = 0

    def walk(node: dict[str, Any], x: float, depth: int) -> None:
        nonlocal depth_max
        for name, kid in sorted(node["kids"].items()):
            w = width * kid["n"] / total
            if w >= 0.5:
                depth_max = max(depth_max, depth)
                rects.append(_rect(name, x, depth, w, row, 100 * kid["n"] / total))
                walk(kid, x, depth + 1)
            x += w

    walk(tree, 0.0, 0)
    height = (depth_max + 2) * row
    body = "".join(rects)
    svg = (
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
        f'font-family="monospace" font-size="11">'
        f'<g transform="translate(0,{height}) scale(1,-1)">{body}</g></svg>'
    )
    out.write_text(svg)


def _rect(name: str, x: float, depth: int, w: float, row: int, pct: float) -> str:
    y = depth * row
    hue = 20 + (hash(name.split(" (")[-1]) % 40)
    label = html.escape(name)
    text = ""
    if w > 60:
        chars = int(w / 7)
        shown = html.escape(name[:chars])
        text = f'<text x="{x + 2:.1f}" y="{-(y + 4)}" transform="scale(1,-1)">{shown}</text>'
    return (
        f"<g><title>{label} — {pct:.1f}%</title>"
        f'<rect x="{x:.1f}" y="{y}" width="{w:.1f}" height="{row - 1}" '
        f'fill="hsl({hue},80%,60%)"/>{text}</g>'
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("collapsed", type=Path)
    parser.add_argument("--svg", type=Path)
    args = parser.parse_args()
    print(render({args.collapsed.stem: {"summary": summarize(args.collapsed),
                                        "collapsed": str(args.collapsed)}}))  # fmt: skip
    if args.svg:
        to_svg(args.collapsed, args.svg)


if __name__ == "__main__":
    main()
