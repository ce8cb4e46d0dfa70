#!/usr/bin/env python3
"""Turns `perf script` output into a flame graph: one SVG, no other tool.

    perf record --call-graph dwarf,16384 -F 1000 -p PID -- sleep 3
    perf script | bench/flamegraph.py --title "POST /v1/run" > graph.svg

Each sample's stack is read from the root (the thread's start) to the leaf
(where the sample hit). Frames that take less than --min-percent of all
samples are left out, so the file stays small. A frame's width is its share
of the samples; hover a frame to read its name and share. Colours only tell
apart where the time is: ours (goroutined), Lua, libmicrohttpd, the kernel,
and the rest.
"""
import argparse
import html
import sys


def read_stacks(lines):
    """Counts of stacks (tuples of 'symbol' from root to leaf)."""
    counts = {}
    frames = []
    in_sample = False
    for line in lines:
        line = line.rstrip("\n")
        if not line.strip():
            if frames:
                key = tuple(reversed(frames))
                counts[key] = counts.get(key, 0) + 1
            frames = []
            in_sample = False
            continue
        if not line[0].isspace():
            in_sample = True  # the sample's header: comm, pid, time, event
            continue
        if in_sample:
            frames.append(frame_name(line.strip()))
    if frames:
        key = tuple(reversed(frames))
        counts[key] = counts.get(key, 0) + 1
    return counts


def frame_name(text):
    """'7f12 lua_load+0x1f (/usr/lib/liblua5.4.so)' -> 'lua_load [liblua5.4]'."""
    parts = text.split(None, 1)
    rest = parts[1] if len(parts) > 1 else parts[0]
    dso = ""
    if rest.endswith(")") and " (" in rest:
        rest, dso = rest.rsplit(" (", 1)
        dso = dso[:-1].rsplit("/", 1)[-1]
        if dso.startswith("[kernel"):
            dso = "kernel"
        elif ".so" in dso:
            dso = dso[: dso.index(".so")]
    symbol = rest.split("+0x", 1)[0]
    if symbol in ("[unknown]", ""):
        symbol = "?"
    return f"{symbol} [{dso}]" if dso else symbol


def build_tree(counts):
    root = {"name": "all", "count": 0, "children": {}}
    for stack, n in counts.items():
        root["count"] += n
        node = root
        for name in stack:
            child = node["children"].setdefault(
                name, {"name": name, "count": 0, "children": {}})
            child["count"] += n
            node = child
    return root


def colour(name):
    if "[kernel" in name:
        return "#e0a060"
    if "[goroutined]" in name:
        return "#60b0e0"
    if "[liblua" in name:
        return "#90d070"
    if "[libmicrohttpd" in name:
        return "#d0a0e0"
    return "#e8d070"


def render(root, title, min_share, width=1200, row=17):
    total = root["count"] or 1
    rects = []
    depth_max = 0

    def walk(node, x, depth):
        nonlocal depth_max
        w = node["count"] / total * width
        if node["count"] / total < min_share:
            return
        depth_max = max(depth_max, depth)
        rects.append((x, depth, w, node))
        cx = x
        for child in sorted(node["children"].values(),
                            key=lambda c: c["name"]):
            walk(child, cx, depth + 1)
            cx += child["count"] / total * width

    walk(root, 0.0, 0)
    top = 40
    height = top + (depth_max + 1) * row + 10
    out = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" '
           f'height="{height}" font-family="monospace" font-size="11">',
           f'<text x="{width / 2}" y="20" text-anchor="middle" '
           f'font-size="15">{html.escape(title)}</text>']
    for x, depth, w, node in rects:
        y = height - 10 - (depth + 1) * row
        share = node["count"] / total * 100
        label = html.escape(node["name"])
        out.append(f'<g><title>{label}: {share:.1f}% ({node["count"]} '
                   f'samples)</title><rect x="{x:.1f}" y="{y}" '
                   f'width="{max(w - 0.5, 0.1):.1f}" height="{row - 1}" '
                   f'fill="{colour(node["name"])}"/>')
        chars = int(w / 7)
        if chars >= 4:
            text = node["name"] if len(node["name"]) <= chars else \
                node["name"][: chars - 2] + ".."
            out.append(f'<text x="{x + 3:.1f}" y="{y + row - 5}">'
                       f'{html.escape(text)}</text>')
        out.append("</g>")
    out.append("</svg>")
    return "\n".join(out) + "\n"


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--title", default="flame graph")
    ap.add_argument("--min-percent", type=float, default=0.5)
    args = ap.parse_args()
    counts = read_stacks(sys.stdin)
    if not counts:
        sys.exit("flamegraph.py: no samples on stdin (perf script output?)")
    sys.stdout.write(render(build_tree(counts), args.title,
                            args.min_percent / 100))


if __name__ == "__main__":
    main()
