"""The stage graph: audio encoder → motion generator → renderer → sink, batch or streaming.

The graph is built from stage instances (or a config), checked for compatibility before any
stage loads, and runs either in batch (features and motion for the whole clip, then frames
rendered in bounded chunks straight to the sink) or streaming (audio chunks pushed through every
stage's stream processor; frames come out after the first chunk). Every stage call goes through
the ``call_stage`` hook so wrappers such as the profiler see it.
"""

from __future__ import annotations

import dataclasses
import math
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import torch

from talkingface.pipeline.contracts import (
    Audio,
    AudioFeatures,
    Controls,
    Frames,
    Motion,
    Portrait,
    PreparedPortrait,
    num_frames_for,
)
from talkingface.pipeline.errors import CompatibilityError, ContractError
from talkingface.pipeline.profiling import Profile, Profiler
from talkingface.pipeline.stages import AudioEncoder, FrameFilter, MotionGenerator, Renderer


class Sink:
    """Where frames go. ``write`` is called with consecutive chunks; ``close`` at the end."""

    def write(self, frames: Frames) -> None:  # pragma: no cover - interface
        raise NotImplementedError

    def close(self) -> Any:
        return None


class FrameCollector(Sink):
    """Keeps every frame in memory (for notebooks and tests; files should use a writer)."""

    def __init__(self) -> None:
        self.parts: list[Frames] = []

    def write(self, frames: Frames) -> None:
        self.parts.append(frames)

    def close(self) -> Frames | None:
        return Frames.concat(self.parts) if self.parts else None


class DiscardSink(Sink):
    """Drops frames (profiling and benchmarks measure the stages, not a file writer)."""

    def write(self, frames: Frames) -> None:
        pass


class _SinkStage:
    """Lets sink writes go through ``call_stage`` so they appear in profiles."""

    kind = "sink"
    device = torch.device("cpu")
    kernel_backend = None

    def __init__(self, sink: Any) -> None:
        self.sink = sink
        self.name = type(sink).__name__

    def write(self, frames: Frames) -> Frames:
        self.sink.write(frames)
        return frames  # so the profiler counts the frames written


@dataclass
class RunResult:
    """What a run produced. Frames are None when they went to a file."""

    frames: Frames | None
    features: AudioFeatures | None
    motion: Motion | None
    prepared: PreparedPortrait
    profile: Profile
    output: Any = None  # the sink's close() result (e.g. the writer's WriteResult)


class LiveControls:
    """Controls that may change while a stream runs (a live page's sliders).

    The stream reads them before each audio chunk and hands a change to the motion stage's
    stream processor (``set_controls``), so it steers the frames made from that chunk on.
    :meth:`set` and :meth:`update` may be called from any thread.

        live = LiveControls(pipe.graph.controls)
        for frames in pipe.stream_chunks(portrait, mic_chunks, controls=live):
            live.update(emotion="happy", head_motion=0.5)
    """

    def __init__(self, controls: Controls | None = None) -> None:
        self._lock = threading.Lock()
        self._controls = controls or Controls()
        self._version = 0

    @property
    def current(self) -> Controls:
        return self._controls

    def set(self, controls: Controls) -> None:
        if not isinstance(controls, Controls):
            raise TypeError(f"LiveControls.set takes Controls, got {type(controls).__name__}")
        with self._lock:
            self._controls = controls
            self._version += 1

    def update(self, **changes: Any) -> Controls:
        """Change some fields (validated as ``Controls`` fields are); returns the new value.

        Raises:
            ContractError: a value out of range or an unknown emotion.
            TypeError: an unknown field name.
        """
        with self._lock:
            controls = dataclasses.replace(self._controls, **changes)
            self._controls = controls
            self._version += 1
        return controls

    def snapshot(self) -> tuple[Controls, int]:
        """The current controls and their version (for :meth:`changed_since`)."""
        with self._lock:
            return self._controls, self._version

    def changed_since(self, version: int) -> tuple[Controls, int] | None:
        """``(controls, version)`` if they changed after ``version``, else None."""
        with self._lock:
            if self._version == version:
                return None
            return self._controls, self._version


def check_compatible(audio: AudioEncoder, motion: MotionGenerator, render: Renderer) -> None:
    """Refuse a combination that cannot work, naming both stages (no weights are loaded)."""
    kind = audio.feature_kind
    if "*" not in motion.accepts and kind not in motion.accepts:
        raise CompatibilityError(
            f"motion generator {motion.name!r} accepts audio features "
            f"{', '.join(motion.accepts)}, but audio encoder {audio.name!r} produces {kind!r}; "
            "choose another audio encoder or motion generator (`talkingface plugins`)"
        )
    if motion.space is not None and motion.space not in render.spaces:
        raise CompatibilityError(
            f"motion generator {motion.name!r} produces a motion latent in space "
            f"{motion.space!r}, but renderer {render.name!r} takes "
            f"{_spaces_taken(render)}; choose a renderer that takes {motion.space!r} or "
            "another motion generator (`talkingface plugins`)"
        )
    if motion.space is None and not render.semantic:
        raise CompatibilityError(
            f"renderer {render.name!r} needs a motion latent in space "
            f"{' or '.join(render.spaces)}, but motion generator {motion.name!r} produces "
            "no latent (semantic pose and expression only)"
        )
    if motion.space is not None:
        return  # the renderer draws from the latent; expression names do not matter
    missing = [n for n in render.requires if n not in motion.provides]
    if missing:
        raise CompatibilityError(
            f"renderer {render.name!r} requires expression coefficients {', '.join(missing)} "
            f"that motion generator {motion.name!r} does not provide (it provides: "
            f"{', '.join(motion.provides) or 'none'})"
        )


def _spaces_taken(render: Renderer) -> str:
    """What a renderer takes, in words, for compatibility messages."""
    spaces = [f"a latent in space {s!r}" for s in render.spaces]
    if render.semantic:
        spaces.append("semantic pose and expression")
    return " or ".join(spaces) or "nothing"


class StageGraph:
    """audio → motion → render → frame filters, with the plugin manager's hooks around every
    call. ``frame_filters`` (none by default) treat every rendered frame before any sink sees
    it; ``talkingface.api.Pipeline`` adds the provenance watermark there, so a graph built by
    hand carries no watermark unless it is given one."""

    def __init__(
        self,
        audio: AudioEncoder,
        motion: MotionGenerator,
        render: Renderer,
        *,
        fps: float = 25.0,
        chunk_frames: int = 16,
        controls: Controls | None = None,
        plugin_manager=None,
        frame_filters: Sequence[FrameFilter] = (),
    ) -> None:
        for stage, base in ((audio, AudioEncoder), (motion, MotionGenerator), (render, Renderer)):
            if not isinstance(stage, base):
                raise CompatibilityError(f"{stage!r} is not a {base.__name__}")
        check_compatible(audio, motion, render)
        if plugin_manager is None:
            from talkingface.pipeline.registry import get_plugin_manager

            plugin_manager = get_plugin_manager()
        self.audio, self.motion, self.render = audio, motion, render
        self.frame_filters = tuple(frame_filters)
        for frame_filter in self.frame_filters:
            if not isinstance(frame_filter, FrameFilter):
                raise CompatibilityError(f"{frame_filter!r} is not a FrameFilter")
        self.fps = float(fps)
        self.chunk_frames = int(chunk_frames)
        self.controls = controls or Controls()
        self.pm = plugin_manager
        self.last_profile: Profile | None = None
        self.encode_block_s = 60.0

    @property
    def stages(self) -> tuple[AudioEncoder, MotionGenerator, Renderer]:
        return (self.audio, self.motion, self.render)

    def describe(self) -> str:
        return f"{self.audio.name}>{self.motion.name}>{self.render.name}"

    # -- calls through the hook -------------------------------------------------------------

    def call(self, stage, method: str, *args, **kwargs):
        return self.pm.hook.call_stage(stage=stage, method=method, args=args, kwargs=kwargs)

    def push(self, stage, processor, chunk):
        return self.call(stage, "stream.push", chunk, processor=processor)

    def flush(self, stage, processor):
        return self.call(stage, "stream.flush", processor=processor)

    def load(self) -> None:
        for stage in self.stages:
            if not stage.loaded:
                self.call(stage, "ensure_loaded")

    def prepare(self, portrait: Portrait) -> PreparedPortrait:
        self.load()
        prepared = self.call(self.render, "prepare", portrait)
        if not isinstance(prepared, PreparedPortrait):
            raise ContractError(f"renderer {self.render.name!r}.prepare must return a "
                                f"PreparedPortrait, got {type(prepared).__name__}")
        return prepared

    def _check_audio(self, audio: Audio) -> Audio:
        """The graph takes mono audio at the encoder's rate; converting files, arrays and other
        rates is the application layer's job (``talkingface.api``, ``talkingface.io``)."""
        if not isinstance(audio, Audio):
            raise ContractError(f"audio must be an Audio object, got {type(audio).__name__}")
        if audio.samples.ndim != 1:
            raise ContractError("the graph takes one mono clip: Audio.samples must be [S]")
        if audio.sample_rate != self.audio.sample_rate:
            raise ContractError(
                f"audio at {audio.sample_rate} Hz, but encoder {self.audio.name!r} takes "
                f"{self.audio.sample_rate} Hz: resample it first (talkingface.io.resample, or "
                "Pipeline.run / Pipeline.stream_chunks, which convert any rate)"
            )
        return audio

    # -- batch ------------------------------------------------------------------------------

    def run(
        self,
        portrait: Portrait | PreparedPortrait,
        audio: Audio,
        sink: Sink | None = None,
        *,
        progress: Callable[[int], None] | None = None,
        profile: bool = True,
    ) -> RunResult:
        """Whole clip: features and motion at once, then frames in chunks to ``sink``.

        Args:
            portrait: a Portrait (prepared here) or a PreparedPortrait from ``prepare``.
            audio: mono ``[S]`` at any rate (resampled once to the encoder's rate).
            sink: receives frames chunk by chunk; default keeps them in memory.
            progress: called with the number of frames written after each chunk.
        """
        sink = sink or FrameCollector()
        sink_stage = _SinkStage(sink)
        with self._profiling("batch", profile) as profiler:
            audio = self._check_audio(audio)
            prepared = self._prepared(portrait)
            features = self._encode_blocks(audio)
            motion = self.call(self.motion, "generate", features, self.controls)
            total = motion.num_frames
            for start in range(0, total, self.chunk_frames):
                part = motion.slice(start, start + self.chunk_frames)
                frames = self._filtered(self.call(self.render, "render", prepared, part))
                self.call(sink_stage, "write", frames)
                if progress is not None:
                    progress(frames.num_frames)
            output = sink.close()
        prof = self._finish(profiler, audio.duration, total)
        frames = output if isinstance(sink, FrameCollector) else None
        return RunResult(frames, features, motion, prepared, prof,
                         None if isinstance(sink, FrameCollector) else output)

    def _encode_blocks(self, audio: Audio) -> AudioFeatures:
        """Features of the whole clip. Long clips are encoded in blocks through the encoder's
        stream processor (exact under the locality contract), so an encoder's intermediate
        activations stay bounded however long the audio is; short clips in one call."""
        block = round(self.encode_block_s * audio.sample_rate)
        if audio.num_samples <= block:
            return self.call(self.audio, "encode", audio, self.fps)
        processor = self.audio.stream(self.fps)
        parts = [self.push(self.audio, processor, chunk) for chunk in audio.chunks(block)]
        parts.append(self.flush(self.audio, processor))
        return AudioFeatures.concat([p for p in parts if p is not None and p.num_frames])

    def _prepared(self, portrait: Portrait | PreparedPortrait) -> PreparedPortrait:
        if isinstance(portrait, PreparedPortrait):
            if portrait.renderer != self.render.name:
                raise ContractError(
                    f"portrait was prepared by renderer {portrait.renderer!r}, this graph renders "
                    f"with {self.render.name!r}: prepare it again with this graph"
                )
            self.load()
            return portrait
        return self.prepare(portrait)

    # -- streaming --------------------------------------------------------------------------

    def takes_live_controls(self) -> bool:
        """Whether the motion stage can change controls mid-stream (``LiveControls``)."""
        return callable(getattr(self.motion.stream(self.controls), "set_controls", None))

    def first_frame_points(self, sample_rate: int) -> list[int]:
        """Where the audio the first frame depends on becomes complete, in samples.

        The first video frame needs audio feature frames ``0 .. motion.lookahead_frames``;
        feature frame ``t`` can be computed once the audio up to ``(t + 1) / fps`` plus the
        encoder's ``lookahead_s`` has arrived (the locality contract). One position per
        feature frame, ascending; the last is the least audio any chunking has to wait for
        before the first frame (152.5 ms for the default pipeline: one 40 ms frame, 40 ms of
        mouth anticipation, 72.5 ms of encoder lookahead).
        """
        lookahead = math.ceil(self.audio.lookahead_s * sample_rate)
        return [lookahead + math.ceil((t + 1) * sample_rate / self.fps)
                for t in range(int(self.motion.lookahead_frames) + 1)]

    def stream(
        self,
        portrait: Portrait | PreparedPortrait,
        chunks: Iterable[Audio],
        *,
        profile: bool = True,
        controls: LiveControls | None = None,
        skip_frames: Callable[[int, int], int] | None = None,
    ) -> Iterator[Frames]:
        """Push audio chunks through every stage; yield frames as soon as they exist.

        ``controls``: live controls instead of the graph's fixed ones; a change is handed to
        the motion stage before the next chunk (its stream processor's ``set_controls``; a
        generator whose processor has none fails then with a :class:`CompatibilityError`).

        ``skip_frames(start, stop)``: called with the frame range of each piece of motion
        before it is rendered; returns how many of its first frames not to render (a live
        server that fell behind renders only the newest). Skipped frames are not yielded, so
        ``start_frame`` jumps over them; a renderer whose stream carries state from frame to
        frame sees the jump too.

        ``chunks`` are consecutive mono ``Audio`` pieces at the encoder's rate (the API's
        ``Pipeline.stream_chunks`` converts any other rate as a stream). After the
        generator is exhausted, ``self.last_profile`` holds the profile with the start latency
        as a live run would see it: the audio that had to arrive before the first frame could
        exist, plus the compute of the chunk that produced it (earlier chunks are processed
        while later audio is still being recorded). Compute of the earlier chunks is reported
        too (``start_compute_ms``), for runs slower than real time.
        """
        with self._profiling("stream", profile) as profiler:
            prepared = self._prepared(portrait)
            a_proc = self.audio.stream(self.fps)
            seen = 0
            if controls is None:
                m_proc = self.motion.stream(self.controls)
            else:
                start_controls, seen = controls.snapshot()
                m_proc = self.motion.stream(start_controls)
            r_proc = self.render.stream(prepared)
            received = 0
            rate = self.audio.sample_rate
            first_in = None
            emitted = 0
            chunk_start = 0.0
            for chunk in chunks:
                chunk = self._check_audio(chunk)
                if chunk.offset != received:  # chunks are renumbered: only their order counts
                    chunk = Audio(chunk.samples, rate, received)
                received += chunk.num_samples
                if controls is not None and (change := controls.changed_since(seen)):
                    seen = self._set_controls(m_proc, change)
                chunk_start = time.perf_counter()
                if first_in is None:
                    first_in = chunk_start
                for frames in self._cascade(self.push(self.audio, a_proc, chunk), m_proc, r_proc,
                                             skip_frames):
                    if emitted == 0 and profiler is not None:
                        now = time.perf_counter()
                        waited_ms = received / rate * 1000
                        profiler.profile.start_latency_ms = waited_ms + (now - chunk_start) * 1000
                        profiler.profile.start_compute_ms = (now - first_in) * 1000
                    emitted += frames.num_frames
                    yield frames
            if first_in is None:
                raise ContractError("stream got no audio chunks")
            tail = self.flush(self.audio, a_proc)
            yield from self._cascade(tail, m_proc, r_proc, skip_frames)
            tail_motion = self.flush(self.motion, m_proc)
            if tail_motion is not None and tail_motion.num_frames:
                yield from self._render(r_proc, tail_motion, skip_frames)
            tail_frames = self.flush(self.render, r_proc)
            if tail_frames is not None and tail_frames.num_frames:
                yield self._filtered(tail_frames)
        # Only the count of samples is kept: a stream of any length holds none of its audio.
        self._finish(profiler, received / rate, num_frames_for(received, rate, self.fps))

    def _set_controls(self, m_proc, change: tuple[Controls, int]) -> int:
        if not callable(getattr(m_proc, "set_controls", None)):
            raise CompatibilityError(
                f"motion generator {self.motion.name!r} cannot change controls mid-stream (its "
                "stream processor has no set_controls); start a new stream with the new controls"
            )
        self.call(self.motion, "stream.set_controls", change[0], processor=m_proc)
        return change[1]

    def _cascade(self, features, m_proc, r_proc, skip_frames=None) -> Iterator[Frames]:
        if features is None or not features.num_frames:
            return
        motion = self.push(self.motion, m_proc, features)
        if motion is not None and motion.num_frames:
            yield from self._render(r_proc, motion, skip_frames)

    def _render(self, r_proc, motion: Motion, skip_frames=None) -> Iterator[Frames]:
        if skip_frames is not None:
            first = motion.start_frame
            skipped = int(skip_frames(first, first + motion.num_frames))
            motion = motion.slice(min(max(0, skipped), motion.num_frames), motion.num_frames)
            if not motion.num_frames:
                return
        for start in range(0, motion.num_frames, self.chunk_frames):
            frames = self.push(self.render, r_proc, motion.slice(start, start + self.chunk_frames))
            if frames is not None and frames.num_frames:
                yield self._filtered(frames)

    def _filtered(self, frames: Frames) -> Frames:
        """``frames`` through every frame filter, in order (before any sink sees them)."""
        for frame_filter in self.frame_filters:
            out = self.call(frame_filter, "apply", frames)
            if not isinstance(out, Frames) or out.num_frames != frames.num_frames:
                raise ContractError(f"frame filter {frame_filter.name!r} must return Frames with "
                                    f"the same {frames.num_frames} frames")
            frames = out
        return frames

    # -- profiling --------------------------------------------------------------------------

    @contextmanager
    def _profiling(self, mode: str, enabled: bool):
        profiler = Profiler(mode) if enabled else None
        if profiler is not None:
            profiler.profile.device = str(self.render.device)
            self.pm.register(profiler)
        try:
            yield profiler
        finally:
            if profiler is not None:
                profiler.profile.wall_s = profiler.now()
                self.pm.unregister(profiler)

    def _finish(self, profiler: Profiler | None, audio_s: float, frames: int) -> Profile:
        prof = profiler.profile if profiler is not None else Profile()
        prof.audio_s = audio_s
        prof.frames = frames
        self.last_profile = prof
        return prof
