"""Small but real test stages (RMS loudness → smoothed jaw → flat-colour frames) and a plugin
that registers them, so graph tests do not depend on the built-in stages."""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from talkingface.pipeline.contracts import (
    Audio,
    AudioFeatures,
    Frames,
    Motion,
    PreparedPortrait,
)
from talkingface.pipeline.hookspecs import hookimpl
from talkingface.pipeline.stages import (
    AudioEncoder,
    MotionGenerator,
    Renderer,
    StreamProcessor,
)


class RmsEncoder(AudioEncoder):
    """RMS loudness of each frame's samples (local: no context, no lookahead)."""

    name = "rms"
    feature_kind = "rms"
    feature_names = ("rms",)
    context_s = 0.0

    def encode(self, audio, fps, frames=None):
        if not isinstance(audio, Audio):
            raise TypeError("RmsEncoder.encode takes an Audio")
        first, stop = frames or self.frame_range(audio, fps)
        rows = []
        for t in range(first, stop):
            a = math.floor(t * audio.sample_rate / fps) - audio.offset
            b = math.floor((t + 1) * audio.sample_rate / fps) - audio.offset
            seg = audio.samples[max(a, 0):max(b, 0)]
            rows.append(seg.pow(2).mean().sqrt() if seg.numel() else torch.tensor(0.0))
        values = torch.stack(rows).float()[:, None] if rows else torch.zeros(0, 1)
        return AudioFeatures(values, fps, self.feature_kind, self.feature_names, first)


@dataclass
class SmoothJawConfig:
    """Attributes:
    smoothing: exponential smoothing factor of the jaw (0 = none).
    gain: jaw opening per unit RMS.
    """

    smoothing: float = 0.5
    gain: float = 4.0


class _SmoothJawStream(StreamProcessor):
    def __init__(self, gen, controls):
        self.gen, self.controls, self.state = gen, controls, 0.0

    def push(self, feats):
        if not isinstance(feats, AudioFeatures):
            raise TypeError("SmoothJaw takes AudioFeatures")
        a = self.gen.config.smoothing
        jaw = torch.empty(feats.num_frames)
        for i, v in enumerate(feats.values[:, 0].tolist()):
            self.state = a * self.state + (1 - a) * min(1.0, v * self.gen.config.gain)
            jaw[i] = self.state
        pose = torch.zeros(feats.num_frames, 6)
        pose[:, 5] = self.controls.head_distance
        return Motion(pose, jaw[:, None], ("jaw_open",), feats.fps, start_frame=feats.start_frame)

    def flush(self):
        return None


class SmoothJaw(MotionGenerator):
    """Jaw from loudness with exponential smoothing (a stateful streaming generator)."""

    name = "smoothjaw"
    Config = SmoothJawConfig
    accepts = ("rms",)
    provides = ("jaw_open",)

    def generate(self, features, controls):
        return self.stream(controls).push(features)

    def stream(self, controls):
        return _SmoothJawStream(self, controls)


@dataclass
class FlatConfig:
    """Attributes:
    size: output frames are size × size.
    """

    size: int = 16


class FlatRenderer(Renderer):
    """Frames whose brightness is the portrait's mean scaled by the jaw opening."""

    name = "flat"
    Config = FlatConfig
    requires = ("jaw_open",)

    @property
    def output_size(self):
        return (self.config.size, self.config.size)

    def prepare(self, portrait):
        mean = portrait.pixels.float().mean(dim=(0, 1))
        return PreparedPortrait(portrait, self.name, self.output_size, {"mean": mean})

    def render(self, prepared, motion):
        if not isinstance(motion, Motion):
            raise TypeError("FlatRenderer.render takes a Motion")
        jaw = motion.get("jaw_open")
        s = self.config.size
        data = prepared.state["mean"][None, None, None, :] * (0.5 + 0.5 * jaw)[:, None, None, None]
        data = data.expand(motion.num_frames, s, s, 3).round().clamp(0, 255).to(torch.uint8)
        return Frames(data.contiguous(), motion.fps, motion.start_frame)


class FramedRenderer(FlatRenderer):
    """Frames of the portrait's own size (like a renderer that pastes the face back)."""

    name = "framed"

    def __init__(self, config=None, *, device="cpu") -> None:
        super().__init__(config, device=device)
        self._size = (self.config.size, self.config.size)

    @property
    def output_size(self):
        return self._size

    def prepare(self, portrait):
        self._size = tuple(portrait.pixels.shape[:2])
        mean = portrait.pixels.float().mean(dim=(0, 1))
        return PreparedPortrait(portrait, self.name, self._size, {"mean": mean})

    def render(self, prepared, motion):
        jaw = motion.get("jaw_open")
        h, w = prepared.size
        data = prepared.state["mean"][None, None, None, :] * (0.5 + 0.5 * jaw)[:, None, None, None]
        data = data.expand(motion.num_frames, h, w, 3).round().clamp(0, 255).to(torch.uint8)
        return Frames(data.contiguous(), motion.fps, motion.start_frame)


class NeedsBlink(FlatRenderer):
    """A renderer that needs a coefficient SmoothJaw does not provide."""

    name = "needsblink"
    requires = ("jaw_open", "blink_l")


class TestStagesPlugin:
    @hookimpl
    def register_audio_encoders(self, register):
        register(RmsEncoder)

    @hookimpl
    def register_motion_generators(self, register):
        register(SmoothJaw, aliases=("jaw",))

    @hookimpl
    def register_renderers(self, register):
        register(FlatRenderer)
        register(FramedRenderer)
        register(NeedsBlink)

    @hookimpl
    def register_presets(self, register):
        register("toy", {"audio": {"name": "rms"}, "motion": {"name": "smoothjaw"},
                         "render": {"name": "flat"}}, description="test stages")


