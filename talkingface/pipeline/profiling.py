"""Per-stage profiling: a ``call_stage`` hook wrapper that times every stage call.

Records wall time (plus CUDA-event time for stages on a GPU), frames produced, and peak memory
(CUDA allocator peak on GPU; process peak RSS on CPU). A :class:`Profile` aggregates the events
into a per-stage table, JSON, and a Chrome trace (open it in https://ui.perfetto.dev).
"""

from __future__ import annotations

import json
import os
import resource
import threading
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch

from talkingface.pipeline.contracts import STAGE_KINDS
from talkingface.pipeline.hookspecs import hookimpl


def _peak_rss_mb() -> float:
    # ru_maxrss is in KiB on Linux.
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


@dataclass
class StageEvent:
    """One stage call."""

    kind: str
    stage: str
    method: str
    start_s: float  # seconds since the profile started
    wall_ms: float
    frames: int  # frames produced (0 for calls that produce no frames)
    gpu_ms: float | None = None
    peak_mem_mb: float = 0.0
    backend: str | None = None  # kernel backend the stage reported, if any


def _fold(table: dict[tuple[str, str, str], dict[str, Any]], e: StageEvent) -> None:
    """Add one event to the per-(kind, stage, method) totals in ``table``."""
    _add(table, (e.kind, e.stage, e.method), e.backend, 1, e.frames, e.wall_ms, e.gpu_ms,
         e.peak_mem_mb)


def _add(table, key, backend, calls, frames, total_ms, gpu_ms, peak_mem_mb) -> None:
    """Add counts and times to the row of ``key = (kind, stage, method)`` in ``table``."""
    kind, stage, method = key
    row = table.setdefault(key, {
        "kind": kind, "stage": stage, "method": method, "calls": 0, "frames": 0,
        "total_ms": 0.0, "gpu_ms": None, "peak_mem_mb": 0.0, "backend": backend,
    })
    row["calls"] += calls
    row["frames"] += frames
    row["total_ms"] += total_ms
    if gpu_ms is not None:
        row["gpu_ms"] = (row["gpu_ms"] or 0.0) + gpu_ms
    row["peak_mem_mb"] = max(row["peak_mem_mb"], peak_mem_mb)


@dataclass
class Profile:
    """All stage events of one run, plus run-level figures.

    A run keeps its first ``max_events`` events one by one (the Chrome trace shows them); later
    ones are only added to per-stage totals (``folded``), so an hours-long stream's profile
    stays small. The table, JSON rows and figures count every event.
    """

    mode: str = "batch"  # "batch" or "stream"
    events: list[StageEvent] = field(default_factory=list)
    folded: dict[tuple[str, str, str], dict[str, Any]] = field(default_factory=dict)
    max_events: int = 20_000
    wall_s: float = 0.0
    audio_s: float = 0.0
    frames: int = 0
    start_latency_ms: float | None = None
    start_compute_ms: float | None = None  # all compute from the first chunk to the first frame
    device: str = "cpu"

    @property
    def real_time_factor(self) -> float | None:
        """Wall time / audio duration (< 1 is faster than real time)."""
        return self.wall_s / self.audio_s if self.audio_s > 0 else None

    def add(self, event: StageEvent) -> None:
        """Record one stage call (kept one by one up to ``max_events``, then folded)."""
        if len(self.events) < self.max_events:
            self.events.append(event)
        else:
            _fold(self.folded, event)

    @property
    def stage_ms(self) -> float:
        """Time inside stage calls (and sink writes), all events included."""
        return sum(row["total_ms"] for row in self.rows())

    @property
    def overhead_ms_per_frame(self) -> float | None:
        """Graph time outside the stages' and the sink's own work, per frame."""
        if not self.frames:
            return None
        return max(0.0, self.wall_s * 1000 - self.stage_ms) / self.frames

    def rows(self) -> list[dict[str, Any]]:
        """One row per (kind, stage, method): calls, frames, total ms, ms/frame, frames/s."""
        table: dict[tuple[str, str, str], dict[str, Any]] = {}
        for e in self.events:
            _fold(table, e)
        for key, done in self.folded.items():
            _add(table, key, done["backend"], done["calls"], done["frames"], done["total_ms"],
                 done["gpu_ms"], done["peak_mem_mb"])
        for row in table.values():
            # Per-frame figures only for calls that produce frames (not load/prepare).
            per = row["frames"]
            row["ms_per_frame"] = row["total_ms"] / per if per else None
            row["fps"] = per / (row["total_ms"] / 1000) if per and row["total_ms"] > 0 else None
        return list(table.values())

    def summary(self) -> dict[str, Any]:
        return {
            "mode": self.mode,
            "device": self.device,
            "frames": self.frames,
            "audio_s": round(self.audio_s, 4),
            "wall_s": round(self.wall_s, 4),
            "real_time_factor": self.real_time_factor,
            "start_latency_ms": self.start_latency_ms,
            "start_compute_ms": self.start_compute_ms,
            "overhead_ms_per_frame": self.overhead_ms_per_frame,
            "peak_rss_mb": round(_peak_rss_mb(), 1),
        }

    def table(self) -> str:
        """Human-readable per-stage table."""
        head = f"{'kind':<7}{'stage':<16}{'method':<15}{'calls':>6}{'frames':>8}"
        head += f"{'total ms':>11}{'ms/frame':>10}{'frames/s':>11}{'peak MB':>9}"
        lines = [head, "-" * len(head)]
        for r in self.rows():
            mpf = f"{r['ms_per_frame']:.2f}" if r["ms_per_frame"] is not None else "-"
            fps = f"{r['fps']:.4g}" if r["fps"] is not None else "-"
            method = r["method"] + (f" [{r['backend']}]" if r["backend"] else "")
            lines.append(
                f"{r['kind']:<7}{r['stage'][:15]:<16}{method[:14]:<15}{r['calls']:>6}"
                f"{r['frames']:>8}{r['total_ms']:>11.1f}{mpf:>10}{fps:>11}{r['peak_mem_mb']:>9.0f}"
            )
        s = self.summary()
        lines.append("-" * len(head))
        rtf = f"{s['real_time_factor']:.3f}" if s["real_time_factor"] is not None else "-"
        lines.append(
            f"{self.mode}: {self.frames} frames, {self.audio_s:.2f} s audio in {self.wall_s:.2f} s "
            f"wall, real-time factor {rtf}"
        )
        if self.start_latency_ms is not None:
            lines.append(f"start latency (first audio in -> first frame out, live): "
                         f"{self.start_latency_ms:.0f} ms; compute to first frame "
                         f"{self.start_compute_ms:.0f} ms")
        if s["overhead_ms_per_frame"] is not None:
            lines.append(f"graph overhead: {s['overhead_ms_per_frame']:.3f} ms/frame")
        return "\n".join(lines)

    def to_dict(self) -> dict[str, Any]:
        return {
            "summary": self.summary(),
            "stages": self.rows(),
            "events": [asdict(e) for e in self.events],
            "events_folded": sum(row["calls"] for row in self.folded.values()),
        }

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2)

    def write_json(self, path: str | Path) -> Path:
        path = Path(path)
        path.write_text(self.to_json(), encoding="utf-8")
        return path

    def chrome_trace(self) -> dict[str, Any]:
        """Chrome trace-event format: one track per stage kind."""
        tids = {kind: i for i, kind in enumerate((*STAGE_KINDS, "filter", "sink"), start=1)}
        events = []
        for kind, tid in tids.items():
            events.append({"ph": "M", "name": "thread_name", "pid": os.getpid(), "tid": tid,
                           "args": {"name": kind}})
        for e in self.events:
            events.append({
                "name": f"{e.stage}.{e.method}",
                "cat": e.kind,
                "ph": "X",
                "ts": e.start_s * 1e6,
                "dur": e.wall_ms * 1e3,
                "pid": os.getpid(),
                "tid": tids.get(e.kind, 9),
                "args": {"frames": e.frames, "peak_mem_mb": e.peak_mem_mb,
                         "gpu_ms": e.gpu_ms, "backend": e.backend},
            })
        return {"traceEvents": events, "displayTimeUnit": "ms"}

    def write_chrome_trace(self, path: str | Path) -> Path:
        path = Path(path)
        path.write_text(json.dumps(self.chrome_trace()), encoding="utf-8")
        return path


class Profiler:
    """Plugin object: register it on the plugin manager to record every stage call."""

    def __init__(self, mode: str = "batch") -> None:
        self.profile = Profile(mode=mode)
        self.t0 = time.perf_counter()
        self._lock = threading.Lock()

    def now(self) -> float:
        return time.perf_counter() - self.t0

    def record(self, event: StageEvent) -> None:
        with self._lock:
            self.profile.add(event)

    @hookimpl(wrapper=True)
    def call_stage(self, stage, method, args, kwargs):
        cuda = stage.device.type == "cuda" and torch.cuda.is_available()
        if cuda:
            torch.cuda.reset_peak_memory_stats(stage.device)
            start_ev = torch.cuda.Event(enable_timing=True)
            end_ev = torch.cuda.Event(enable_timing=True)
            start_ev.record()
        start = self.now()
        result = yield
        wall_ms = (self.now() - start) * 1000
        gpu_ms = None
        if cuda:
            end_ev.record()
            end_ev.synchronize()
            gpu_ms = start_ev.elapsed_time(end_ev)
            peak = torch.cuda.max_memory_allocated(stage.device) / 2**20
        else:
            peak = _peak_rss_mb()
        frames = getattr(result, "num_frames", 0) if result is not None else 0
        backend = stage.kernel_backend
        self.record(StageEvent(stage.kind, stage.name or type(stage).__name__, method, start,
                               wall_ms, int(frames), gpu_ms, round(peak, 1),
                               backend))
        return result
