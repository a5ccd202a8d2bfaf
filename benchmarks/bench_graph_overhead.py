"""Framework overhead per frame: everything the graph does besides the stages' own work.

Runs the stage graph with near-free stages (they return preallocated tensors) on a long clip,
in batch and streaming mode, and reports wall time minus time inside stage calls, per frame
(hook dispatch, profiling, contract validation, slicing, chunking). Target: < 1 ms/frame.

    python benchmarks/bench_graph_overhead.py --seconds 60 --repeats 5
"""

from __future__ import annotations

import argparse
import platform
import statistics
import time

import torch

from talkingface.pipeline.contracts import (
    Audio,
    AudioFeatures,
    Frames,
    Motion,
    Portrait,
    PreparedPortrait,
)
from talkingface.pipeline.graph import Sink, StageGraph
from talkingface.pipeline.registry import PluginManager
from talkingface.pipeline.stages import AudioEncoder, MotionGenerator, PerChunkStream, Renderer


class NullEncoder(AudioEncoder):
    name = "null-audio"
    feature_kind = "null"
    context_s = 0.0

    def encode(self, audio, fps, frames=None):
        first, stop = frames or self.frame_range(audio, fps)
        return AudioFeatures(torch.zeros(stop - first, 4), fps, "null", start_frame=first)


class NullMotion(MotionGenerator):
    name = "null-motion"
    provides = ("jaw_open",)

    def generate(self, features, controls):
        t = features.num_frames
        return Motion(torch.zeros(t, 6), torch.zeros(t, 1), ("jaw_open",), features.fps,
                      start_frame=features.start_frame)

    def stream(self, controls):
        return PerChunkStream(lambda f: self.generate(f, controls))


class NullRenderer(Renderer):
    name = "null-render"
    requires = ("jaw_open",)

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.frame = torch.zeros(64, 512, 512, 3, dtype=torch.uint8)

    def prepare(self, portrait):
        return PreparedPortrait(portrait, self.name, (512, 512))

    def render(self, prepared, motion):
        return Frames(self.frame[: motion.num_frames], motion.fps, motion.start_frame)


class NullSink(Sink):
    def write(self, frames):
        pass


def measure(mode: str, seconds: float, chunk_frames: int) -> dict:
    pm = PluginManager(load_entry_points=False)
    graph = StageGraph(NullEncoder(), NullMotion(), NullRenderer(), fps=25,
                       chunk_frames=chunk_frames, plugin_manager=pm)
    audio = Audio(torch.zeros(int(seconds * 16000)), 16000)
    portrait = Portrait(torch.zeros(64, 64, 3, dtype=torch.uint8))
    if mode == "batch":
        prof = graph.run(portrait, audio, NullSink()).profile
    else:
        for _ in graph.stream(portrait, audio.chunks(3200)):
            pass
        prof = graph.last_profile
    stage_ms = prof.stage_ms
    return {
        "frames": prof.frames,
        "wall_ms": prof.wall_s * 1000,
        "stage_ms": stage_ms,
        "overhead_ms_per_frame": (prof.wall_s * 1000 - stage_ms) / prof.frames,
        "total_ms_per_frame": prof.wall_s * 1000 / prof.frames,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=60.0, help="audio length")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--chunk-frames", type=int, default=16)
    args = parser.parse_args()
    print(f"machine: {platform.processor() or platform.machine()}, "
          f"{torch.get_num_threads()} torch threads, python {platform.python_version()}, "
          f"{time.strftime('%Y-%m-%d')}")
    for mode in ("batch", "stream"):
        runs = [measure(mode, args.seconds, args.chunk_frames) for _ in range(args.repeats)]
        over = statistics.median(r["overhead_ms_per_frame"] for r in runs)
        total = statistics.median(r["total_ms_per_frame"] for r in runs)
        print(f"{mode:>6}: {runs[0]['frames']} frames, graph overhead median {over:.4f} ms/frame "
              f"(wall incl. null stages {total:.4f} ms/frame) over {args.repeats} runs")


if __name__ == "__main__":
    main()
