"""Summarise py-spy's collapsed stacks (``--format raw``): where the event loop spends time."""

from __future__ import annotations

from collections import Counter

WORKER_THREAD = "Thread._bootstrap"
"""Stacks through this frame are helper threads (aiosqlite's driver thread), not the loop."""


def summarise(raw: str, *, top: int = 25) -> str:
    """Top frames by own time and gateway frames by inclusive time, as text."""
    own: Counter[str] = Counter()
    inclusive: Counter[str] = Counter()
    loop_total = thread_total = 0
    for line in raw.splitlines():
        stack, _, count_text = line.rstrip().rpartition(" ")
        if not stack or not count_text.isdigit():
            continue
        count = int(count_text)
        frames = [frame for frame in stack.split(";") if frame]
        if any(frame.startswith(WORKER_THREAD) for frame in frames):
            thread_total += count
            continue
        loop_total += count
        if frames:
            own[frames[-1]] += count
        for frame in set(frames):
            inclusive[frame] += count
    total = loop_total + thread_total
    if not total:
        return "no samples\n"
    lines = [
        f"samples: {total}; event-loop thread {loop_total} ({100 * loop_total / total:.0f}%), "
        f"helper threads (SQLite driver) {thread_total} ({100 * thread_total / total:.0f}%)",
        "",
        f"top {top} frames by own time (event-loop thread; % of its samples):",
    ]
    lines += [f"  {100 * n / loop_total:5.1f}%  {frame}" for frame, n in own.most_common(top)]
    lines += ["", f"top {top} gateway frames by inclusive time (event-loop thread):"]
    ours = [(frame, n) for frame, n in inclusive.most_common() if "(gateway/" in frame]
    lines += [f"  {100 * n / loop_total:5.1f}%  {frame}" for frame, n in ours[:top]]
    return "\n".join(lines) + "\n"
