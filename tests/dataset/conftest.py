"""Stand-ins for the costly parts of a dataset build: a fake clip whose every per-frame tensor
encodes its frame index (so alignment is checkable), and folders of empty "videos"."""

from __future__ import annotations

import pytest
import torch

from talkingface.pipeline.contracts import Frames
from talkingface.pipeline.errors import InputError

FPS = 25.0
RATE = 16000
NAMES = ("jaw_open", "smile")


def fake_clip(task, frames: int = 30) -> dict:
    """What ``build_clip`` returns, for ``frames`` frames: column 0 of every per-frame tensor
    is the frame index; a video whose name contains ``noface`` is refused like a real one."""
    if "noface" in task.id:
        raise InputError("a face in 0% of the frames (--min-face 50%)")
    if "crash" in task.id:
        raise RuntimeError("boom")
    t = torch.arange(frames, dtype=torch.float32)
    per_frame = lambda d: t[:, None].repeat(1, d)  # noqa: E731
    tensors = {
        "pose": per_frame(6),
        "expression": per_frame(len(NAMES)),
        "confidence": torch.ones(frames),
        "has_face": torch.ones(frames, dtype=torch.uint8),
        "landmarks": t[:, None, None].repeat(1, 478, 3),
        "rest_landmarks": torch.zeros(478, 3),
        "audio_features": per_frame(3),
        "audio": torch.zeros(int(frames * RATE / FPS)),
        "reference_frames": torch.zeros(2, 8, 6, 3, dtype=torch.uint8),
        "reference_index": torch.tensor([0, frames - 1]),
    }
    meta = {
        "id": task.id,
        "source": task.source,
        "frames": frames,
        "fps": FPS,
        "seconds": frames / FPS,
        "expression_names": list(NAMES),
        "feature_kind": "fake",
        "feature_names": ["a", "b", "c"],
        "encoder": task.settings.encoder,
        "audio_rate": RATE,
        "source_fps": FPS,
        "source_size": [8, 6],
        "face_fraction": 1.0,
        "rest_frame": 0,
    }
    return {"tensors": tensors, "meta": meta}


def video_folder(root, names) -> None:
    """Empty files named like videos (the fake build never opens them)."""
    root.mkdir(parents=True, exist_ok=True)
    for name in names:
        (root / name).write_bytes(b"")


@pytest.fixture(scope="session")
def talking_videos(tmp_path_factory):
    """A folder with a short clip rendered by our pipeline from the demo portrait (1.2 s,
    192 px, with its speech) and the same frames without a sound track."""
    from talkingface.api import Pipeline
    from talkingface.assets import demo_portrait
    from talkingface.io import VideoWriter, read_video
    from talkingface.testing import synthetic_speech

    folder = tmp_path_factory.mktemp("videos")
    overrides = [
        "render.params.size=192",
        "seed=0",
        "threads=1",
        "output.content_credentials=false",
    ]
    pipe = Pipeline.from_config("default", overrides)
    pipe.run(demo_portrait(), synthetic_speech(1.2), output=folder / "talk.mp4")
    frames = read_video(folder / "talk.mp4").frames
    with VideoWriter(folder / "mute.mp4", FPS, tuple(frames.shape[1:3])) as writer:
        writer.write(Frames(frames, FPS))
    return folder
