"""A rolling restart of three `serve` instances under running runs, at a small scale
(`tools/bench/rolling_restart.py` runs the full one: 50 runs of 10-30 s): each instance
gets SIGTERM in turn with a short grace period, hands back the runs it cannot finish, and
starts again; every run completes, every log is contiguous with one terminal event."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from rolling_restart import rolling_restart

from .test_threads import record


def test_a_rolling_restart_of_three_instances_loses_no_run(
    tmp_path: Path, redis_server: Any
) -> None:
    lines: list[str] = []
    counts = rolling_restart(
        redis_server.url, tmp_path, runs=6, seconds=(2.0, 3.0), grace=0.5, say=lines.append
    )
    record("queue-rolling-restart-small", lines)
    assert counts["completed"] == counts["contiguous"] == 6, lines
    assert counts["retried"] >= 1, lines  # the restarts did interrupt runs
