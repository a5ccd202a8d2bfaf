"""The profile stays small over long runs: events past ``max_events`` are folded into totals."""

from __future__ import annotations

import pytest

from talkingface.pipeline.profiling import Profile, StageEvent


def _event(i: int, kind: str = "render") -> StageEvent:
    return StageEvent(kind, "toy", "stream.push", start_s=i * 0.01, wall_ms=2.0, frames=4,
                      peak_mem_mb=100.0 + i)


def test_events_beyond_the_cap_are_folded_into_the_totals():
    prof = Profile(mode="stream", max_events=3, wall_s=1.0, frames=40)
    for i in range(10):
        prof.add(_event(i))
    prof.add(_event(10, kind="sink"))
    assert len(prof.events) == 3
    (render,) = [r for r in prof.rows() if r["kind"] == "render"]
    assert render["calls"] == 10 and render["frames"] == 40
    assert render["total_ms"] == pytest.approx(20.0) and render["peak_mem_mb"] == 109.0
    assert render["ms_per_frame"] == pytest.approx(0.5)
    assert prof.stage_ms == pytest.approx(22.0)
    assert prof.to_dict()["events_folded"] == 8
    assert len([e for e in prof.chrome_trace()["traceEvents"] if e["ph"] == "X"]) == 3
    assert "render" in prof.table()


def test_a_short_run_keeps_every_event():
    prof = Profile()
    for i in range(5):
        prof.add(_event(i))
    assert len(prof.events) == 5 and not prof.folded
    assert prof.to_dict()["events_folded"] == 0
