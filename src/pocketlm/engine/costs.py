"""What a forward pass costs by the rows it carries, measured while the engine runs.

Two of the scheduler's choices trade rows for time: how many tokens to draft (a drafted row
costs compute whether or not it is kept) and how much of a waiting prompt to read beside
running streams (every prompt row lengthens the step those streams wait for). The right
answer depends on the model, the machine and the kernels: on two cores, with pocketlm's
llama.cpp build, SmolLM2's 4-row pass costs ~1.5x its 1-row pass and a 16-row pass ~5x, where
llama.cpp's own kernels took 2.2x for 4 rows; Gemma 3's rows cost otherwise. So every step is
timed, and the choices are made from what this engine measured.
"""

from __future__ import annotations

import bisect
import math
import statistics
from collections import deque

_EXACT = 64  # row counts up to this are kept apart; above, in buckets a quarter of a doubling wide
# The latest passes of a size that count, and of them the fastest: other work on the machine only ever adds
# time to a pass (a median still read 8 rows as dearer than 16 on a machine at load 6).
_WINDOW = 15


class StepCosts:
    """Seconds per forward pass by rows: the fastest of the latest passes of each size, in between interpolated."""

    def __init__(self):
        self._seen: dict[int, deque[tuple[int, float]]] = {}  # bucket -> its latest (rows, seconds)
        self._point: dict[int, tuple[float, float]] = {}  # bucket -> (median rows, fastest seconds)
        self._points: list[tuple[float, float]] = []  # the buckets' points by rows: what estimate reads

    def observe(self, rows: int, seconds: float) -> None:
        """Record one pass of ``rows`` rows (tokens) that took ``seconds``."""
        if rows <= 0:
            return
        key = rows if rows <= _EXACT else _EXACT + round(4 * math.log2(rows / _EXACT))
        window = self._seen.setdefault(key, deque(maxlen=_WINDOW))
        window.append((rows, seconds))
        # A bucket of one row count (up to _EXACT) needs no median: its rows are that count (one step at one stream).
        middle = rows if key == rows else statistics.median([r for r, _ in window])
        point = (middle, min(s for _, s in window))
        if self._point.get(key) != point:
            self._point[key] = point
            self._points = sorted(self._point.values())

    def estimate(self, rows: int) -> float | None:
        """Expected seconds for a pass of ``rows`` rows; None before anything was measured.

        Between two measured sizes: on the line joining them. Beyond the largest: in proportion to rows
        (no economy of scale assumed). Below the smallest: the smallest's cost, as a pass has a floor.
        """
        points = self._points
        if not points:
            return None
        i = bisect.bisect_left(points, (rows, -math.inf))
        if i < len(points) and points[i][0] == rows:
            return points[i][1]
        if i == 0:
            return points[0][1]
        (r0, s0) = points[i - 1]
        if i == len(points):
            return s0 * rows / r0
        r1, s1 = points[i]
        return s0 + (s1 - s0) * (rows - r0) / (r1 - r0)

    def rows_within(self, seconds: float, at_least: int, at_most: int) -> int:
        """The most rows (between the bounds) whose pass is expected to take no more than ``seconds``."""
        lo, hi = at_least, at_most
        while lo < hi:  # estimate is non-decreasing in rows where measurements are: bisect on it
            mid = (lo + hi + 1) // 2
            cost = self.estimate(mid)
            if cost is not None and cost <= seconds:
                lo = mid
            else:
                hi = mid - 1
        return lo
