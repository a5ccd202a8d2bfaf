"""Conformance test mixins for stage authors (built-in and third-party plugins alike).

Subclass the mixin for your stage kind in a pytest test class and implement ``make_stage``;
the mixin contributes tests for the contract shapes, determinism under a seed, batch ==
streaming, and clear errors on bad input::

    from talkingface.testing import AudioEncoderConformance

    class TestMyEncoder(AudioEncoderConformance):
        def make_stage(self):
            return MyEncoder()

Override ``make_audio`` / ``make_features`` / ``make_portrait`` / ``make_motion`` to feed your
stage inputs it understands; override ``atol`` for float tolerance.
"""

from __future__ import annotations

import math

import pytest
import torch

from talkingface.pipeline.contracts import (
    EXPRESSION_NAMES,
    POSE_NAMES,
    Audio,
    AudioFeatures,
    Controls,
    Frames,
    Motion,
    Portrait,
    PreparedPortrait,
)
from talkingface.pipeline.stages import AudioEncoder, MotionGenerator, Renderer

FPS = 25.0


def synthetic_speech(seconds: float = 2.0, sample_rate: int = 16000, seed: int = 0) -> Audio:
    """A speech-like test signal: voiced syllables (harmonics + formant-ish noise) and pauses."""
    g = torch.Generator().manual_seed(seed)
    n = int(seconds * sample_rate)
    t = torch.arange(n) / sample_rate
    f0 = 120 + 20 * torch.sin(2 * math.pi * 0.7 * t)
    phase = 2 * math.pi * torch.cumsum(f0, 0) / sample_rate
    voiced = sum(torch.sin(k * phase) / k for k in range(1, 8))
    syllables = torch.clamp(torch.sin(2 * math.pi * 3.3 * t), min=0) ** 2
    pauses = (torch.sin(2 * math.pi * 0.4 * t) > -0.6).float()
    noise = torch.randn(n, generator=g) * 0.05
    wave = (0.3 * voiced * syllables + noise * syllables) * pauses
    return Audio(wave.float().contiguous(), sample_rate)


def chunked(items, sizes):
    """Split a contract object into consecutive chunks of the given (cycled) sizes."""
    out, start, i = [], 0, 0
    total = items.num_samples if isinstance(items, Audio) else items.num_frames
    while start < total:
        size = sizes[i % len(sizes)]
        out.append(items.slice(start, start + size))
        start += size
        i += 1
    return out


def run_stream(processor, chunks):
    """Push every chunk, flush, and return the non-empty outputs in order."""
    outs = [processor.push(c) for c in chunks] + [processor.flush()]
    return [o for o in outs if o is not None and o.num_frames > 0]


class _Conformance:
    atol: float = 1e-5

    def make_stage(self):
        raise NotImplementedError("conformance mixins need make_stage()")

    def loaded_stage(self):
        stage = self.make_stage()
        stage.ensure_loaded()
        return stage


class AudioEncoderConformance(_Conformance):
    """Contract tests every ``AudioEncoder`` must pass."""

    stream_chunk_sizes: tuple[int, ...] = (1600, 3200, 777, 4000)

    def make_audio(self, stage: AudioEncoder) -> Audio:
        return synthetic_speech(2.0, stage.sample_rate)

    def test_is_audio_encoder(self):
        stage = self.make_stage()
        assert isinstance(stage, AudioEncoder)
        assert stage.feature_kind, "declare feature_kind"

    def test_contract_shapes(self):
        stage = self.loaded_stage()
        audio = self.make_audio(stage)
        feats = stage.encode(audio, FPS)
        expected = math.ceil(audio.num_samples * FPS / audio.sample_rate - 1e-9)
        assert isinstance(feats, AudioFeatures)
        assert feats.num_frames == expected
        assert feats.kind == stage.feature_kind
        assert feats.start_frame == 0
        assert torch.isfinite(feats.values).all()
        if stage.feature_names is not None:
            assert feats.names == tuple(stage.feature_names)

    def test_deterministic(self):
        stage = self.loaded_stage()
        audio = self.make_audio(stage)
        a, b = stage.encode(audio, FPS), stage.encode(audio, FPS)
        assert torch.equal(a.values, b.values)

    def test_batch_equals_streaming(self):
        stage = self.loaded_stage()
        audio = self.make_audio(stage)
        batch = stage.encode(audio, FPS)
        outs = run_stream(stage.stream(FPS), chunked(audio, self.stream_chunk_sizes))
        streamed = AudioFeatures.concat(outs)
        assert streamed.num_frames == batch.num_frames
        torch.testing.assert_close(streamed.values, batch.values, atol=self.atol, rtol=1e-4)

    def test_streaming_emits_early(self):
        stage = self.loaded_stage()
        audio = self.make_audio(stage)
        proc = stage.stream(FPS)
        first = proc.push(audio.slice(0, audio.sample_rate))  # one second in
        assert first is not None and first.num_frames > 0, "no frames after 1 s of audio"

    def test_rejects_non_audio(self):
        stage = self.loaded_stage()
        with pytest.raises((TypeError, ValueError)):
            stage.encode(torch.zeros(16000), FPS)


class MotionGeneratorConformance(_Conformance):
    """Contract tests every ``MotionGenerator`` must pass."""

    stream_chunk_sizes: tuple[int, ...] = (5, 8, 3, 13)

    def make_features(self, stage: MotionGenerator) -> AudioFeatures:
        raise NotImplementedError("MotionGeneratorConformance needs make_features()")

    def make_controls(self) -> Controls:
        return Controls(seed=7)

    def test_is_motion_generator(self):
        assert isinstance(self.make_stage(), MotionGenerator)

    def test_contract_shapes(self):
        stage = self.loaded_stage()
        feats = self.make_features(stage)
        motion = stage.generate(feats, self.make_controls())
        assert isinstance(motion, Motion)
        assert motion.num_frames == feats.num_frames
        assert motion.start_frame == feats.start_frame
        assert set(stage.provides) <= set(motion.names)
        assert torch.isfinite(motion.pose).all() and torch.isfinite(motion.expression).all()
        assert motion.space == stage.space

    def test_deterministic_under_seed(self):
        stage = self.loaded_stage()
        feats = self.make_features(stage)
        a = stage.generate(feats, self.make_controls())
        b = stage.generate(feats, self.make_controls())
        assert torch.equal(a.pose, b.pose) and torch.equal(a.expression, b.expression)

    def test_batch_equals_streaming(self):
        stage = self.loaded_stage()
        feats = self.make_features(stage)
        batch = stage.generate(feats, self.make_controls())
        chunks = chunked(feats, self.stream_chunk_sizes)
        outs = run_stream(stage.stream(self.make_controls()), chunks)
        streamed = Motion.concat(outs)
        assert streamed.num_frames == batch.num_frames
        torch.testing.assert_close(streamed.pose, batch.pose, atol=self.atol, rtol=1e-4)
        torch.testing.assert_close(streamed.expression, batch.expression, atol=self.atol, rtol=1e-4)

    def test_rejects_wrong_input(self):
        stage = self.loaded_stage()
        with pytest.raises((TypeError, ValueError)):
            stage.generate(torch.zeros(10, 4), self.make_controls())

    def test_the_same_controls_set_mid_stream_change_nothing(self):
        """For a generator that takes live controls (its stream processor has
        ``set_controls``): handing it the controls it already has, between chunks, leaves
        the stream equal to batch. Skipped for a generator without live controls."""
        stage = self.loaded_stage()
        processor = stage.stream(self.make_controls())
        if not callable(getattr(processor, "set_controls", None)):
            pytest.skip(f"{type(stage).__name__} takes controls only when a stream starts")
        feats = self.make_features(stage)
        batch = stage.generate(feats, self.make_controls())
        outs = []
        for chunk in chunked(feats, self.stream_chunk_sizes):
            processor.set_controls(self.make_controls())
            outs.append(processor.push(chunk))
        outs.append(processor.flush())
        streamed = Motion.concat([out for out in outs if out is not None and out.num_frames])
        torch.testing.assert_close(streamed.pose, batch.pose, atol=self.atol, rtol=1e-4)
        torch.testing.assert_close(streamed.expression, batch.expression, atol=self.atol, rtol=1e-4)


def neutral_motion(
    frames: int, fps: float = FPS, names=EXPRESSION_NAMES, **values: float
) -> Motion:
    """``frames`` identical frames: neutral pose (scale 1) and expression, except for the
    given pose or expression values (e.g. ``neutral_motion(1, jaw_open=0.7, yaw=0.2)``)."""
    names = tuple(names)
    pose = torch.zeros(frames, len(POSE_NAMES))
    pose[:, 5] = 1.0
    expr = torch.zeros(frames, len(names))
    for name, value in values.items():
        if name in POSE_NAMES:
            pose[:, POSE_NAMES.index(name)] = value
        elif name in names:
            expr[:, names.index(name)] = value
        else:
            raise ValueError(f"{name!r} is neither a pose column nor one of {names}")
    return Motion(pose, expr, names, fps)


def talking_motion(frames: int, fps: float = FPS, names=EXPRESSION_NAMES) -> Motion:
    """A deterministic motion that opens the jaw, blinks and turns the head a little."""
    motion = neutral_motion(frames, fps, names)
    t = torch.arange(frames, dtype=torch.float32) / fps
    expr, pose = motion.expression.clone(), motion.pose.clone()
    col = {n: i for i, n in enumerate(names)}
    if "jaw_open" in col:
        expr[:, col["jaw_open"]] = 0.5 * (1 - torch.cos(2 * math.pi * 2.5 * t)) / 2 * 1.6
    for eye in ("blink_l", "blink_r"):
        if eye in col:
            expr[:, col[eye]] = ((t % 1.5) < 0.12).float()
    pose[:, 0] = 0.08 * torch.sin(2 * math.pi * 0.3 * t)
    pose[:, 1] = 0.04 * torch.sin(2 * math.pi * 0.5 * t)
    return Motion(pose, expr, tuple(names), fps)


class RendererConformance(_Conformance):
    """Contract tests every ``Renderer`` must pass."""

    stream_chunk_sizes: tuple[int, ...] = (3, 1, 4)
    num_frames: int = 8

    def make_portrait(self) -> Portrait:
        raise NotImplementedError("RendererConformance needs make_portrait()")

    def make_motion(self, stage: Renderer) -> Motion:
        return talking_motion(self.num_frames)

    def test_is_renderer(self):
        assert isinstance(self.make_stage(), Renderer)

    def test_contract_shapes(self):
        stage = self.loaded_stage()
        prepared = stage.prepare(self.make_portrait())
        assert isinstance(prepared, PreparedPortrait)
        motion = self.make_motion(stage)
        frames = stage.render(prepared, motion)
        assert isinstance(frames, Frames)
        assert frames.num_frames == motion.num_frames
        assert frames.size == tuple(stage.output_size)
        assert frames.start_frame == motion.start_frame

    def test_deterministic(self):
        stage = self.loaded_stage()
        prepared = stage.prepare(self.make_portrait())
        motion = self.make_motion(stage)
        a, b = stage.render(prepared, motion), stage.render(prepared, motion)
        assert torch.equal(a.data, b.data)

    def test_batch_equals_streaming(self):
        stage = self.loaded_stage()
        prepared = stage.prepare(self.make_portrait())
        motion = self.make_motion(stage)
        batch = stage.render(prepared, motion)
        outs = run_stream(stage.stream(prepared), chunked(motion, self.stream_chunk_sizes))
        streamed = Frames.concat(outs)
        assert streamed.num_frames == batch.num_frames
        diff = (streamed.data.float() - batch.data.float()).abs().max().item()
        assert diff <= (1.0 if batch.data.dtype == torch.uint8 else self.atol)

    def test_rejects_wrong_motion(self):
        stage = self.loaded_stage()
        prepared = stage.prepare(self.make_portrait())
        with pytest.raises((TypeError, ValueError)):
            stage.render(prepared, torch.zeros(4, 6))
