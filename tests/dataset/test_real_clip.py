"""A dataset built from a real (rendered) video with the real extractor and encoder, read back
frame-aligned with its audio; the same build as Ray tasks on a local Ray."""

from __future__ import annotations

import json
import time

import pytest
import torch

from talkingface.dataset import BuildSettings, Dataset, build_dataset
from talkingface.dataset import format as fmt

from .conftest import FPS


def test_build_and_read_back_aligned(talking_videos, tmp_path):
    settings = BuildSettings(encoder="energy", reference_frames=3, reference_size=96)
    report = build_dataset(talking_videos, tmp_path / "ds", settings, workers=1, progress=False)
    assert report.built == ["talk"] and report.skipped == {
        "mute": "no audio track: a clip needs its speech"
    }
    clip = Dataset(tmp_path / "ds")["talk"]
    t = clip.num_frames
    assert t == 30 and clip.fps == FPS  # 1.2 s at 25 fps
    assert clip.audio_features.values.shape[0] == t and clip.landmarks.shape == (t, 478, 3)
    assert clip.audio_features.kind == "energy"
    assert clip.has_face.all() and (clip.confidence > 0).all()
    # the audio covers exactly the frames: frame k is [k / fps, (k + 1) / fps)
    assert clip.audio.num_samples == round(t / FPS * clip.audio.sample_rate)
    # features re-computed on the stored audio agree row by row: the rows are the frames
    from talkingface.pipeline.registry import get_plugin_manager

    encoder = get_plugin_manager().registry.get("audio", "energy").cls()
    again = encoder.encode(clip.audio, FPS).values
    assert torch.allclose(again[:t], clip.audio_features.values, atol=1e-5)
    assert clip.reference_frames.shape == (3, 96, 96, 3)
    assert clip.reference_index.tolist()[0] == 0
    # a speaking mouth opens and closes: the jaw coefficient moves
    assert float(clip.motion.get("jaw_open").std()) > 0.01


def test_process_pool(talking_videos, tmp_path):
    report = build_dataset(
        talking_videos, tmp_path / "ds", BuildSettings(encoder="energy"), workers=2, progress=False
    )
    assert report.built == ["talk"] and "mute" in report.skipped, report.failed
    assert Dataset(tmp_path / "ds")["talk"].num_frames == 30


def test_ray_tasks_on_a_local_ray(talking_videos, tmp_path):
    pytest.importorskip("ray", reason="Ray is not installed: pip install 'talkingface[ray]'")
    start = time.perf_counter()
    report = build_dataset(
        talking_videos,
        tmp_path / "ds",
        BuildSettings(encoder="energy"),
        executor="ray",
        workers=1,
        progress=False,
    )
    assert report.built == ["talk"] and "mute" in report.skipped, report.failed
    manifest = json.loads((tmp_path / "ds" / fmt.MANIFEST).read_text())
    assert {c["id"]: c["status"] for c in manifest["clips"]} == {"mute": "skipped", "talk": "ok"}
    assert Dataset(tmp_path / "ds")["talk"].num_frames == 30
    assert time.perf_counter() - start < 60  # a local Ray starts in ~10-15 s here
