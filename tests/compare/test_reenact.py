"""Self-reenactment: the scores' maths, and video-driven next to audio-driven variants on a
fake pipeline whose video-driven output copies the driving video."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
import torch

from talkingface.compare import reenact as RE
from talkingface.compare import runner as R
from talkingface.compare.report import terminal_table, write_all
from talkingface.face import landmarks as L

from .conftest import FPS, SR, FakePipeline, fake_tracker, render, speech

BASE = np.random.default_rng(0).uniform(16, 48, (L.NUM_LANDMARKS, 2))
LIPS = list(RE.MOUTH_POINTS)


def tracker478(frames):
    """The fake tracker, with 478 landmarks whose lips part as the mouth opens."""
    track = fake_tracker(frames)
    points = np.repeat(BASE[None], len(track.mouth), axis=0)
    points[:, LIPS, 1] += 10 * track.mouth[:, None]
    track.points = points
    return track


DRIVERS: dict[str, np.ndarray] = {}
"""Driving video path -> its mouth opening per frame (what the fake's video source follows)."""


class VideoDrivenFake(FakePipeline):
    """The fake pipeline; with ``motion.params.path`` it renders that video's mouth."""

    def __init__(self, source, overrides):
        keys = dict(o.split("=", 1) for o in overrides)
        self.driver = keys.pop("motion.params.path", None)
        keys.pop("motion", None)
        super().__init__(source, [f"{k}={v}" for k, v in keys.items()])

    def mouth(self, audio, n):
        if self.driver is None:
            return super().mouth(audio, n)
        return DRIVERS[self.driver][:n]


@pytest.fixture
def real_input():
    """A real video whose mouth moves on its own (not with its audio), portrait = frame 0."""
    audio = speech()
    n = math.ceil(audio.num_samples * FPS / SR)
    mouth = 0.5 + 0.4 * np.sin(np.arange(n) / 3.0)
    DRIVERS["clip.mp4"] = mouth
    real = render(mouth)
    loaded = R.LoadedInput(
        real[0], audio, real_frames=real, real_fps=FPS, portrait_is_first_frame=True
    )
    return R.CompareInput("clip", lambda: loaded, "video", Path("clip.mp4"))


def _run(variants, inputs):
    return R.ComparisonRunner(
        [R.parse_variant(v) for v in variants],
        inputs,
        pipeline_factory=VideoDrivenFake,
        tracker=tracker478,
        progress=False,
        stream_latency=False,
    ).run()


def _value(comp, variant, metric):
    (row,) = [r for r in comp.rows if r.variant == variant and r.metric == metric]
    return row


def test_video_driven_and_audio_driven_in_one_table(real_input, tmp_path):
    comp = _run(["reenact=motion=video", "audio=", "still=audio=still"], [real_input])
    assert all(rec.status == "ok" for rec in comp.records), [r.error for r in comp.records]
    # the video-driven variant reproduces the real frames: perfect scores
    assert _value(comp, "reenact", "psnr").value == math.inf
    assert _value(comp, "reenact", "ssim").value == pytest.approx(1.0)
    for metric in ("lmk_all", "lmk_mouth", "lmk_eyes"):
        assert _value(comp, "reenact", metric).value == pytest.approx(0.0, abs=1e-9)
    assert _value(comp, "reenact", "mouth_corr").value > 0.99
    # the audio-driven ones are scored on the same frames, and worse
    for name in ("audio", "still"):
        assert _value(comp, name, "psnr").value < 60
        assert _value(comp, name, "lmk_mouth").value > 0.01
        assert _value(comp, name, "lmk_eyes").value == pytest.approx(0.0, abs=1e-9)
    lpips = _value(comp, "audio", "lpips")
    if math.isnan(lpips.value):
        assert lpips.note.startswith(RE.NO_LPIPS)
    rec = comp.status_of("reenact", "clip")
    assert len(rec.strip) == len(rec.strip_real) == len(rec.strip_times) == R.STRIP_FRAMES
    assert np.array_equal(rec.strip[2], rec.strip_real[2])

    text = terminal_table(comp)
    assert "self-reenactment" in text and "lmk mouth" in text
    page = write_all(comp, tmp_path)["html"].read_text()
    assert "Self-reenactment" in page and "Real | each variant" in page
    assert page.count('alt="frame"') == R.STRIP_FRAMES * 4  # real + three variants


def test_video_driven_variant_needs_a_real_video(real_input):
    pair = R.CompareInput("pair", real_input.load, "pair")
    comp = _run(["reenact=motion=video"], [pair])
    rec = comp.status_of("reenact", "pair")
    assert rec.status == "error" and "needs real-video inputs" in rec.error


def test_no_scores_without_the_first_frame_as_portrait(real_input):
    loaded = real_input.load()
    other = R.LoadedInput(
        loaded.portrait, loaded.audio, real_frames=loaded.real_frames, real_fps=FPS
    )
    comp = _run(["audio="], [R.CompareInput("clip", lambda: other, "video", Path("clip.mp4"))])
    assert not [r for r in comp.rows if r.family == "reenact"]


def test_drives_from_video():
    assert RE.drives_from_video(["motion=video"]) and RE.drives_from_video(["motion.name=video"])
    assert not RE.drives_from_video(["motion=rules", "audio=video"])
    assert RE.sets_driver(["motion.params.path=a.mp4"]) and not RE.sets_driver(["motion=video"])


def test_similarity_align_undoes_a_similarity():
    rng = np.random.default_rng(1)
    pts = rng.normal(size=(50, 2))
    angle, scale, shift = 0.3, 1.7, np.array([5.0, -2.0])
    rot = np.array([[math.cos(angle), -math.sin(angle)], [math.sin(angle), math.cos(angle)]])
    moved = scale * pts @ rot.T + shift
    assert RE.similarity_align(pts, moved) == pytest.approx(moved, abs=1e-9)


def test_landmark_errors_units_and_missing_faces():
    real = np.repeat(BASE[None], 3, axis=0)
    gen = real + np.array([2.0, 0.0])  # the whole face 2 px to the right
    gen[1] = math.nan  # no face found in frame 1
    iod = np.linalg.norm(BASE[33] - BASE[263])
    out = RE.landmark_errors(gen, real)
    assert out["frames"] == 2
    assert out["lmk_all"] == pytest.approx(2.0 / iod)
    assert out["lmk_mouth"] == pytest.approx(0.0, abs=1e-9)  # placement only: shape is right


def test_geometry_maps_back_and_cuts_the_real_frame():
    matrix = np.array([[0.5, 0.0, -4.0], [0.0, 0.5, -2.0]])
    geo = RE.Geometry(matrix, (16, 16))
    real_xy = np.array([[10.0, 20.0], [30.0, 8.0]])
    crop_xy = real_xy @ matrix[:, :2].T + matrix[:, 2]
    assert geo.to_real(crop_xy) == pytest.approx(real_xy)
    frame = torch.zeros(64, 64, 3, dtype=torch.uint8)
    frame[:, 32:] = 255
    cut = geo.real_image(frame)
    assert cut.shape == (16, 16, 3)
    assert cut[:, :10].max() == 0 and cut[:, 14:].min() == 255
    same, why = RE.Geometry.of(None, (64, 64), (64, 64))
    assert same.is_identity((64, 64)) and not why
    none, why = RE.Geometry.of(None, (32, 32), (64, 64))
    assert none is None and "neither" in why


def test_local_lpips_never_downloads(monkeypatch, tmp_path):
    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(tmp_path))
    scorer, why = RE.local_lpips()
    assert scorer is None and why.startswith(RE.NO_LPIPS)
    assert not any(tmp_path.iterdir())
