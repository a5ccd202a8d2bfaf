"""A fake pipeline and face tracker: frames whose brightness encodes the mouth opening, so the
comparison machinery runs in milliseconds with answers known in advance."""

from __future__ import annotations

import math
from types import SimpleNamespace

import numpy as np
import pytest
import torch

from talkingface.compare import metrics as M
from talkingface.compare.runner import FaceTrack, LoadedInput
from talkingface.pipeline.contracts import Audio, Frames, PreparedPortrait
from talkingface.pipeline.errors import ConfigError
from talkingface.pipeline.profiling import Profile, StageEvent

SIZE = 64
FPS = 25.0
SR = 16000


def speech(seconds: float = 4.0, seed: int = 0) -> Audio:
    """Noise bursts of random loudness (syllables) with a 600 ms pause in the middle."""
    rng = np.random.default_rng(seed)
    n = int(seconds * SR)
    hop = SR // 10
    env = np.repeat(rng.uniform(0.05, 1.0, n // hop + 1), hop)[:n]
    env[int(1.5 * SR) : int(2.1 * SR)] = 0.0
    x = 0.3 * env * rng.standard_normal(n)
    return Audio(torch.tensor(x, dtype=torch.float32), SR)


def render(mouth: np.ndarray) -> torch.Tensor:
    """uint8 [T, SIZE, SIZE, 3]: grey background, a face box whose red level is the mouth."""
    t = len(mouth)
    frames = torch.full((t, SIZE, SIZE, 3), 128, dtype=torch.uint8)
    frames[:, 16:48, 16:48, 0] = torch.tensor(np.clip(mouth, 0, 1) * 255).round().to(
        torch.uint8
    )[:, None, None]
    frames[:, 16:48, 16:48, 1] = 200  # open eyes
    return frames


def mouth_from_audio(audio: Audio, num_frames: int) -> np.ndarray:
    e = M.frame_energy_db(audio.samples.numpy(), audio.sample_rate, FPS, num_frames)
    return np.clip((e + 60) / 60, 0, 1)


class FakePipeline:
    """Same surface as talkingface.api.Pipeline, renders ``render(mouth(audio))``."""

    def __init__(self, source: str, overrides: list[str]):
        keys = dict(o.split("=", 1) for o in overrides)
        if "boom" in keys:
            raise ConfigError("unknown key 'boom': see `talkingface config` for the keys")
        self.config = SimpleNamespace(fps=FPS, seed=int(keys.get("seed", 0)))
        self.still = keys.get("audio") == "still"
        self.last_profile = None

    def run(self, image, audio, output=None, *, sink=None, progress=False):
        n = math.ceil(audio.num_samples * FPS / audio.sample_rate)
        frames = render(self.mouth(audio, n))
        for a in range(0, n, 16):
            sink.write(Frames(frames[a : a + 16], FPS, a))
        prof = Profile(wall_s=0.5, audio_s=audio.duration, frames=n)
        prof.events += [
            StageEvent("audio", "fake", "encode", 0.0, 10.0, n, peak_mem_mb=10.0),
            StageEvent("render", "fake", "render", 0.0, 100.0, n, peak_mem_mb=20.0),
            StageEvent("sink", "sink", "write", 0.0, 250.0, 0),
        ]
        pixels = torch.as_tensor(image)
        prepared = PreparedPortrait(SimpleNamespace(pixels=pixels), "fake", (SIZE, SIZE), {})
        return SimpleNamespace(frames=None, prepared=prepared, profile=prof)

    def mouth(self, audio, n: int) -> np.ndarray:
        """``[n]`` the mouth opening the fake renders."""
        return np.zeros(n) if self.still else mouth_from_audio(audio, n)

    def stream(self, image, audio, chunk_s=None):
        self.last_profile = SimpleNamespace(start_latency_ms=42.0)
        yield from ()


def fake_tracker(frames) -> FaceTrack:
    f = torch.as_tensor(frames).numpy().astype(np.float64)
    t = len(f)
    mouth = f[:, 32, 32, 0] / 255.0
    eyes = np.repeat(f[:, 32, 32, 1:2] / 255.0, 2, axis=1)
    boxes = np.tile([16.0, 16.0, 48.0, 48.0], (t, 1))
    points = np.tile(np.array([[16.0, 16.0], [48.0, 48.0]]), (t, 1, 1))
    return FaceTrack(mouth, eyes, np.zeros((t, 3)), boxes, points)


@pytest.fixture(scope="session")
def real_video_input():
    """A 'real video' whose mouth follows its audio exactly (perfect ground truth)."""
    audio = speech()
    n = math.ceil(audio.num_samples * FPS / SR)
    real = render(mouth_from_audio(audio, n))
    return LoadedInput(real[0], audio, real_frames=real, real_fps=FPS)
