"""Stand-ins for the costly parts of a dataset build: a fake clip whose every per-frame tensor
encodes its frame index (so alignment is checkable), and folders of empty "videos"."""

from __future__ import annotations

import torch

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
    }
    return {"tensors": tensors, "meta": meta}


def video_folder(root, names) -> None:
    """Empty files named like videos (the fake build never opens them)."""
    root.mkdir(parents=True, exist_ok=True)
    for name in names:
        (root / name).write_bytes(b"")
