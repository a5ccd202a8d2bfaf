"""Base classes of the three stage kinds: audio encoders, motion generators and renderers.

A stage declares what it accepts and produces (feature kinds, expression names, latent spaces)
and how far ahead it must look, so the graph can check a combination before anything loads.
Every stage has a batch entry point (whole clip in, whole result out) and a streaming one
(``stream()`` returns a :class:`StreamProcessor`: chunks in via ``push``, chunks out, ``flush``
at the end). Batch and streaming output of the same input must agree; the conformance mixins
in :mod:`talkingface.testing` check it.
"""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from dataclasses import MISSING, dataclass, fields, is_dataclass
from pathlib import Path
from typing import Any, ClassVar, Generic, TypeVar

import torch

from talkingface.pipeline.contracts import (
    STAGE_KINDS,
    Audio,
    AudioFeatures,
    Controls,
    Frames,
    Motion,
    Portrait,
    PreparedPortrait,
    num_frames_for,
)
from talkingface.pipeline.errors import ContractError, InputError
from talkingface.pipeline.params import to_dataclass

In = TypeVar("In")
Out = TypeVar("Out")


@dataclass
class NoConfig:
    """Config of a stage that has no parameters."""


class StreamProcessor(ABC, Generic[In, Out]):
    """One streaming run of a stage: carries its state from chunk to chunk."""

    @abstractmethod
    def push(self, chunk: In) -> Out | None:
        """Feed the next input chunk; return the output that is ready (or None)."""

    @abstractmethod
    def flush(self) -> Out | None:
        """The input has ended: return whatever output is still held back (or None)."""


class Stage(ABC):  # noqa: B024 - abstract by role; the kinds below add abstract methods
    """Common part of every stage.

    Subclasses set ``kind`` (via the three base classes below), a ``Config`` dataclass whose
    fields are the stage's parameters (documented field by field), and the declarations of
    their kind. ``__init__`` must be cheap: heavy work (reading weights, building models)
    belongs in :meth:`load`, which the graph calls once, after the compatibility check.
    """

    kind: ClassVar[str] = ""
    name: ClassVar[str] = ""
    """Registered name; set by the plugin manager from the ``register`` call."""
    Config: ClassVar[type] = NoConfig
    inputs: ClassVar[dict[str, str]] = {}
    """Per-run inputs the stage takes besides the audio (name -> what it is), e.g. a transcript.
    Each name is a field of ``Config``; ``Pipeline.from_config(..., inputs={name: value})`` (the
    CLI's ``--text`` is ``inputs={"text": ...}``) sets it on every chosen stage that declares it."""
    kernel_backend: str | None = None
    """The kernel backend (``talkingface.kernels``) the stage's last call ran on, if it uses
    one; the profiler shows it per stage."""

    def __init__(self, config: Any = None, *, device: str | torch.device = "cpu") -> None:
        if config is None:
            config = self.Config()
        elif is_dataclass(self.Config) and not isinstance(config, self.Config):
            # An omegaconf DictConfig (or a mapping) built from this stage's Config.
            config = to_dataclass(self.Config, config)
        self.config = config
        self.device = torch.device(device)
        self.loaded = False

    def load(self) -> None:
        """Load weights / build models. Called once by the graph; default: nothing to load."""
        self.loaded = True

    def ensure_loaded(self) -> None:
        if not self.loaded:
            self.load()
            self.loaded = True

    @classmethod
    def config_fields(cls) -> list[tuple[str, str, Any]]:
        """``(name, type, default)`` of every config field, for ``talkingface plugins``."""
        if not is_dataclass(cls.Config):
            return []
        out = []
        for f in fields(cls.Config):
            if f.default is not MISSING:
                default = f.default
            elif f.default_factory is not MISSING:
                default = f.default_factory()
            else:
                default = None
            type_name = (f.type if isinstance(f.type, str)
                         else getattr(f.type, "__name__", str(f.type)))
            out.append((f.name, type_name, default))
        return out

    def declarations(self) -> dict[str, Any]:
        """What this stage declares to the graph (shown by ``talkingface plugins``)."""
        return {"inputs": list(self.inputs)} if self.inputs else {}

    def __repr__(self) -> str:
        return f"<{self.kind} stage {self.name or type(self).__name__}>"


class AudioEncoder(Stage):
    """Audio → per-frame features.

    Declarations:
        feature_kind: the ``AudioFeatures.kind`` this encoder produces.
        feature_names: column names, or None.
        sample_rate: the rate ``encode`` expects (the application layer resamples input
            once to it; the graph refuses any other rate).
        context_s: seconds of past audio a frame may depend on.
        lookahead_s: seconds of future audio a frame may depend on (streaming latency).

    Locality contract (what makes batch == streaming): the feature of frame ``t`` depends only
    on the samples in ``[t/fps - context_s, (t+1)/fps + lookahead_s]``; samples before the
    stream's start or after its end read as zeros. Loudness normalisation over the whole clip
    breaks it; use running or fixed normalisation.
    """

    kind: ClassVar[str] = "audio"
    feature_kind: ClassVar[str] = ""
    feature_names: ClassVar[tuple[str, ...] | None] = None
    sample_rate: ClassVar[int] = 16000
    context_s: ClassVar[float] = 0.5
    lookahead_s: ClassVar[float] = 0.0

    @abstractmethod
    def encode(
        self, audio: Audio, fps: float, frames: tuple[int, int] | None = None
    ) -> AudioFeatures:
        """Features of video frames ``frames = (first, stop)`` (absolute indices).

        Args:
            audio: mono ``[S]`` at ``self.sample_rate``; ``audio.offset`` places it in the stream.
                It covers the requested frames plus their context where the stream has it.
            fps: video frame rate.
            frames: which frames to produce; default: every frame that ``audio`` covers
                (``0 .. ceil(S * fps / sr)`` when ``audio.offset == 0``).
        Returns:
            ``AudioFeatures`` with ``values [stop - first, D]`` and ``start_frame = first``.
        """

    max_fps: ClassVar[float] = 240.0
    """Highest frame rate the encoder can resolve (e.g. its analysis hop rate)."""

    def check_audio(self, audio: object, fps: float) -> torch.Tensor:
        """The mono samples ``[S]`` of ``audio``, or a clear error for input ``encode`` can't use.

        Raises:
            TypeError: not an ``Audio``.
            ContractError: wrong sample rate, a batch of clips, or an unusable fps.
            InputError: NaN or infinite samples.
        """
        name = self.name or type(self).__name__
        if not isinstance(audio, Audio):
            raise TypeError(
                f"{name}: expected talkingface Audio, got {type(audio).__name__}; "
                "wrap the waveform as Audio(samples, sample_rate)"
            )
        if audio.sample_rate != self.sample_rate:
            raise ContractError(
                f"{name}: audio at {audio.sample_rate} Hz, expected {self.sample_rate} Hz; "
                "resample it first (the pipeline does this when it loads audio)"
            )
        samples = audio.samples
        if samples.ndim == 2:
            if samples.shape[0] != 1:
                raise ContractError(
                    f"{name}: encodes one clip at a time, got a batch of {samples.shape[0]}; "
                    "call encode once per clip"
                )
            samples = samples[0]
        if not isinstance(fps, (int, float)) or not 0 < fps <= self.max_fps:
            raise ContractError(f"{name}: fps must be in (0, {self.max_fps:g}], got {fps!r}")
        if not torch.isfinite(samples).all():
            raise InputError(f"{name}: the audio contains NaN or infinite samples; fix the file")
        return samples

    def frame_range(self, audio: Audio, fps: float) -> tuple[int, int]:
        """All frames covered by ``audio`` (its offset included)."""
        end = audio.offset + audio.num_samples
        return (math.floor(audio.offset * fps / audio.sample_rate + 1e-9),
                num_frames_for(end, audio.sample_rate, fps))

    def stream(self, fps: float) -> StreamProcessor[Audio, AudioFeatures]:
        """Streaming run: by default re-encodes a sliding window (exact under locality)."""
        return WindowedAudioStream(self, fps)

    def declarations(self) -> dict[str, Any]:
        return super().declarations() | {
            "produces": self.feature_kind,
            "sample_rate": self.sample_rate,
            "lookahead_s": self.lookahead_s,
        }


class WindowedAudioStream(StreamProcessor[Audio, AudioFeatures]):
    """Streams any local audio encoder by re-encoding a window of recent audio per chunk.

    Frame ``t`` is emitted as soon as the audio up to ``(t+1)/fps + lookahead_s`` has arrived;
    the window fed to ``encode`` starts ``context_s`` before the first frame to emit, so each
    frame sees exactly what the batch run sees. Memory is bounded by the window.
    """

    def __init__(self, encoder: AudioEncoder, fps: float) -> None:
        self.encoder, self.fps = encoder, fps
        self.sr = encoder.sample_rate
        self.buffer = torch.zeros(0)
        self.buffer_offset = 0  # absolute index of buffer[0]
        self.received = 0  # absolute samples received
        self.next_frame = 0
        self.context = math.ceil(encoder.context_s * self.sr) + 1
        self.lookahead = math.ceil(encoder.lookahead_s * self.sr)

    def _frame_start(self, t: int) -> int:
        return math.floor(t * self.sr / self.fps)

    def push(self, chunk: Audio) -> AudioFeatures | None:
        if chunk.sample_rate != self.sr:
            raise ContractError(
                f"{self.encoder.name}: stream chunk at {chunk.sample_rate} Hz, "
                f"expected {self.sr} Hz"
            )
        if chunk.offset != self.received:
            raise ContractError(
                f"{self.encoder.name}: chunk offset {chunk.offset}, expected {self.received}"
            )
        self.buffer = torch.cat([self.buffer, chunk.samples])
        self.received += chunk.num_samples
        # Frames whose whole window [start - context, end + lookahead] has arrived.
        ready_until = self.received - self.lookahead
        stop = math.floor(ready_until * self.fps / self.sr + 1e-9)
        return self._emit(stop)

    def flush(self) -> AudioFeatures | None:
        return self._emit(num_frames_for(self.received, self.sr, self.fps))

    def _emit(self, stop: int) -> AudioFeatures | None:
        if stop <= self.next_frame:
            return None
        first = self.next_frame
        win_start = max(0, self._frame_start(first) - self.context)
        window = Audio(self.buffer[win_start - self.buffer_offset:], self.sr, win_start)
        out = self.encoder.encode(window, self.fps, (first, stop))
        self.next_frame = stop
        keep_from = max(0, self._frame_start(stop) - self.context)
        self.buffer = self.buffer[keep_from - self.buffer_offset:]
        self.buffer_offset = keep_from
        return out


class MotionGenerator(Stage):
    """Audio features (+ controls) → ``Motion``.

    Declarations:
        accepts: feature kinds it can consume (``("*",)`` = any).
        provides: expression names it produces.
        space: latent space tag it produces, or None.
        lookahead_frames: future feature frames needed before a motion frame can be emitted.
    """

    kind: ClassVar[str] = "motion"
    accepts: ClassVar[tuple[str, ...]] = ("*",)
    provides: ClassVar[tuple[str, ...]] = ()
    space: ClassVar[str | None] = None
    lookahead_frames: ClassVar[int] = 0

    @abstractmethod
    def generate(self, features: AudioFeatures, controls: Controls) -> Motion:
        """Motion for every frame of ``features`` (``start_frame`` carried over)."""

    def default_audio(self) -> str | Path | None:
        """The audio of a run that is given none, or None: the run needs audio. A generator
        driven by something else (the ``video`` source: its driver's sound track) returns it,
        or raises :class:`InputError` saying why there is none."""
        return None

    def stream(self, controls: Controls) -> StreamProcessor[AudioFeatures, Motion]:
        """Streaming run. The default holds every chunk until ``flush`` (exact, but no early
        output); generators meant for streaming override it with a stateful processor."""
        return BufferedStream(lambda feats: self.generate(feats, controls), AudioFeatures.concat)

    def declarations(self) -> dict[str, Any]:
        return super().declarations() | {
            "accepts": list(self.accepts),
            "provides": list(self.provides),
            "space": self.space,
            "lookahead_frames": self.lookahead_frames,
        }


class Renderer(Stage):
    """Portrait + ``Motion`` → ``Frames``.

    Declarations:
        requires: expression names it cannot do without.
        uses: expression names it uses when present (missing ones read as 0).
        spaces: latent spaces it renders from when the motion carries one of them.
        semantic: whether it renders semantic motion (pose + named expression) without a
            latent. A renderer with ``spaces`` and ``semantic = True`` takes either, and
            uses the latent when one is present; ``semantic = False`` needs a latent in
            one of ``spaces``. A generator producing a latent in a space the renderer does
            not take is refused (its motion would be rendered without what it carries).
        output_size: ``(H, W)`` of its frames (may depend on config). A renderer whose frames
            take the portrait's size (e.g. ``meshwarp`` with ``paste_back``) reports the last
            prepared portrait's; ``PreparedPortrait.size`` is always that portrait's own, and is
            what writers should use.
    """

    kind: ClassVar[str] = "render"
    requires: ClassVar[tuple[str, ...]] = ()
    uses: ClassVar[tuple[str, ...]] = ()
    spaces: ClassVar[tuple[str, ...]] = ()
    semantic: ClassVar[bool] = True

    @property
    def output_size(self) -> tuple[int, int]:
        return (512, 512)

    @abstractmethod
    def prepare(self, portrait: Portrait) -> PreparedPortrait:
        """Analyse and encode the portrait once (face analysis, crops, source features)."""

    @abstractmethod
    def render(self, prepared: PreparedPortrait, motion: Motion) -> Frames:
        """Frames for every frame of ``motion`` (``start_frame`` carried over)."""

    def stream(self, prepared: PreparedPortrait) -> StreamProcessor[Motion, Frames]:
        """Streaming run. The default renders each chunk as it comes (right for renderers
        whose frames depend only on their own motion frame)."""
        return PerChunkStream(lambda motion: self.render(prepared, motion))

    def check_render_args(self, prepared: object, motion: object) -> None:
        """TypeError naming this renderer unless ``render`` got a PreparedPortrait and a
        Motion (the usual slip: passing the portrait itself); ContractError when the motion
        lacks an expression name in ``requires`` and carries no latent in one of ``spaces``
        (the graph checks the stages' declarations; this checks the motion itself)."""
        if not isinstance(prepared, PreparedPortrait):
            raise TypeError(
                f"{self.name}.render takes a PreparedPortrait, got {type(prepared).__name__}: "
                "call prepare(portrait) first"
            )
        if not isinstance(motion, Motion):
            raise TypeError(f"{self.name}.render takes a Motion, got {type(motion).__name__}")
        if motion.latent is not None and motion.space in self.spaces:
            return  # drawn from the latent: expression names do not matter
        missing = [n for n in self.requires if n not in motion.names]
        if missing:
            latent = "".join(f" or a {space!r} latent" for space in self.spaces)
            raise ContractError(
                f"{self.name} needs the expression coefficient(s) {', '.join(missing)}{latent} "
                f"in the motion (it has {', '.join(motion.names) or 'none'}): use a motion "
                "generator that provides them"
            )

    def declarations(self) -> dict[str, Any]:
        return super().declarations() | {
            "requires": list(self.requires),
            "uses": list(self.uses),
            "spaces": list(self.spaces),
            "semantic": self.semantic,
            "output_size": list(self.output_size),
        }


class FrameFilter(ABC):
    """A step every rendered frame passes through before any sink, in batch and streaming
    alike (the provenance watermark is one). The graph calls :meth:`apply` through the
    ``call_stage`` hook, so filters appear in profiles as kind ``"filter"``. A filter must
    treat each frame on its own, so streaming still equals batch."""

    kind: ClassVar[str] = "filter"
    name: ClassVar[str] = ""
    device = torch.device("cpu")
    kernel_backend: str | None = None

    @abstractmethod
    def apply(self, frames: Frames) -> Frames:
        """The same frames (count, size, ``start_frame``), transformed."""


class BufferedStream(StreamProcessor[In, Out]):
    """Holds every chunk and runs the batch function once on ``flush``."""

    def __init__(self, run, concat) -> None:
        self.run, self.concat, self.parts = run, concat, []

    def push(self, chunk):
        if chunk is not None and chunk.num_frames:
            self.parts.append(chunk)
        return None

    def flush(self):
        if not self.parts:
            return None
        out = self.run(self.concat(self.parts))
        self.parts = []
        return out


class PerChunkStream(StreamProcessor[In, Out]):
    """Runs the batch function on each chunk as it arrives (stateless stages)."""

    def __init__(self, run) -> None:
        self.run = run

    def push(self, chunk):
        if chunk is None or not chunk.num_frames:
            return None
        return self.run(chunk)

    def flush(self):
        return None


STAGE_BASES: dict[str, type[Stage]] = {
    base.kind: base for base in (AudioEncoder, MotionGenerator, Renderer)
}
"""The base class of each of ``STAGE_KINDS``."""
assert tuple(STAGE_BASES) == tuple(STAGE_KINDS), "stage bases out of step with STAGE_KINDS"
