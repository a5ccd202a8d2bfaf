"""Building a dataset: resume, skipped and failed clips, atomic files, settings checks (with a
fake clip builder, in this process)."""

from __future__ import annotations

import json

import pytest
import torch

from talkingface.dataset import build as B
from talkingface.dataset import clip as C
from talkingface.dataset import format as fmt
from talkingface.dataset.reader import Dataset
from talkingface.pipeline.errors import InputError, TalkingFaceError

from .conftest import NAMES, fake_clip, video_folder


@pytest.fixture
def fake_build(monkeypatch):
    calls = []

    def build_clip(task):
        calls.append(task.id)
        return fake_clip(task)

    monkeypatch.setattr(C, "build_clip", build_clip)
    return calls


def _build(videos, out, **kw):
    kw.setdefault("settings", C.BuildSettings(encoder="energy"))
    return B.build_dataset(videos, out, kw.pop("settings"), workers=1, progress=False, **kw)


def test_find_videos_ids(tmp_path):
    video_folder(tmp_path, ["b.mp4", "a.MOV", "notes.txt", "a.mp4"])
    video_folder(tmp_path / "sub dir", ["c.mkv"])
    assert [i for i, _ in B.find_videos(tmp_path)] == ["a_mov", "a_mp4", "b", "sub_dir__c"]
    with pytest.raises(InputError, match="not a folder"):
        B.find_videos(tmp_path / "missing")


def test_build_then_resume(tmp_path, fake_build):
    videos, out = tmp_path / "videos", tmp_path / "ds"
    video_folder(videos, ["one.mp4", "two.mp4", "noface.mp4", "crash.mp4"])
    report = _build(videos, out)
    assert sorted(report.built) == ["one", "two"]
    assert report.skipped == {"noface": "a face in 0% of the frames (--min-face 50%)"}
    assert report.failed["crash"].startswith("internal error: RuntimeError: boom")
    manifest = json.loads((out / fmt.MANIFEST).read_text())
    assert (manifest["format"], manifest["version"]) == (fmt.FORMAT, fmt.VERSION)
    assert manifest["params"]["encoder"] == "energy"
    assert manifest["params"]["feature_kind"] == "energy"
    status = {c["id"]: c["status"] for c in manifest["clips"]}
    assert status == {"crash": "failed", "noface": "skipped", "one": "ok", "two": "ok"}

    fake_build.clear()
    report = _build(videos, out)  # resume: only the failed clip is tried again
    assert fake_build == ["crash"]
    assert sorted(report.reused) == ["one", "two"] and report.built == []
    assert "noface" in report.skipped
    fake_build.clear()
    _build(videos, out, retry_skipped=True)
    assert sorted(fake_build) == ["crash", "noface"]

    data = Dataset(out)
    assert data.ids == ["one", "two"]
    assert set(data.skipped) == {"crash", "noface"}


def test_a_clip_without_manifest_entry_is_recovered(tmp_path, fake_build):
    """A run killed between writing a clip and recording it: the next run keeps the clip."""
    videos, out = tmp_path / "videos", tmp_path / "ds"
    video_folder(videos, ["one.mp4"])
    _build(videos, out)
    manifest = json.loads((out / fmt.MANIFEST).read_text())
    manifest["clips"] = []
    (out / fmt.MANIFEST).write_text(json.dumps(manifest))
    (out / fmt.CLIPS_DIR / "one.safetensors.123.tmp").write_bytes(b"half a clip")
    fake_build.clear()
    report = _build(videos, out)
    assert fake_build == [] and report.reused == ["one"]
    assert Dataset(out).ids == ["one"]
    assert not list((out / fmt.CLIPS_DIR).glob("*.tmp"))  # the killed run's leftovers go


def test_failed_write_leaves_no_clip(tmp_path, fake_build, monkeypatch):
    videos, out = tmp_path / "videos", tmp_path / "ds"
    video_folder(videos, ["one.mp4"])

    def killed(fd):
        raise KeyboardInterrupt  # as if the build was stopped in the middle of a write

    monkeypatch.setattr(fmt.os, "fsync", killed)
    with pytest.raises(KeyboardInterrupt):
        _build(videos, out)
    assert list((out / fmt.CLIPS_DIR).iterdir()) == []


def test_other_settings_are_refused(tmp_path, fake_build):
    videos, out = tmp_path / "videos", tmp_path / "ds"
    video_folder(videos, ["one.mp4"])
    _build(videos, out)
    with pytest.raises(InputError, match=r"other settings \(fps\)"):
        _build(videos, out, settings=C.BuildSettings(encoder="energy", fps=30))


def test_bad_settings(tmp_path):
    video_folder(tmp_path / "v", ["one.mp4"])
    with pytest.raises(TalkingFaceError, match="unknown audio encoder 'nope'"):
        _build(tmp_path / "v", tmp_path / "ds", settings=C.BuildSettings(encoder="nope"))
    (tmp_path / "empty").mkdir()
    with pytest.raises(InputError, match="no videos"):
        _build(tmp_path / "empty", tmp_path / "ds2")
    for bad in ({"fps": 0}, {"reference_frames": 0}, {"min_face": 2.0}, {"max_seconds": -1}):
        with pytest.raises(InputError):
            C.BuildSettings(**bad)
    with pytest.raises(InputError, match="--address is for --executor ray"):
        B.build_dataset(tmp_path / "v", tmp_path / "ds3", address="auto")


def test_reference_indices():
    has_face = torch.tensor([0, 1, 1, 1, 1, 1, 1, 1, 1, 0], dtype=torch.bool)
    assert C.reference_indices(has_face, 3) == [0, 5, 8]  # first, then spread over faces
    assert C.reference_indices(has_face, 1) == [0]
    assert C.reference_indices(torch.zeros(4, dtype=torch.bool), 2) == [0, 3]


def test_clip_roundtrip_is_frame_aligned(tmp_path, fake_build):
    videos, out = tmp_path / "videos", tmp_path / "ds"
    video_folder(videos, ["one.mp4"])
    _build(videos, out)
    clip = Dataset(out)["one"]
    t = clip.num_frames
    assert t == 30 and clip.fps == 25.0
    assert clip.motion.names == NAMES
    index = torch.arange(t, dtype=torch.float32)
    for rows in (
        clip.motion.pose,
        clip.motion.expression,
        clip.audio_features.values,
        clip.landmarks[:, :, 0],
    ):
        assert torch.equal(rows[:, 0], index)
    assert clip.audio_features.kind == "fake" and clip.audio.sample_rate == 16000
    assert clip.has_face.dtype == torch.bool and clip.reference_frames.dtype == torch.uint8
