"""Reading a built dataset back: :class:`Dataset` (the manifest) and :class:`DatasetClip`
(one clip's motion, audio features, audio and portrait frames, frame-aligned).

    from talkingface.dataset import Dataset

    data = Dataset("my_dataset")
    for clip in data:
        clip.motion.pose          # [T, 6]
        clip.audio_features.values  # [T, D], row t = video frame t
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from talkingface.dataset import format as fmt
from talkingface.pipeline.contracts import Audio, AudioFeatures, Motion
from talkingface.pipeline.errors import InputError


@dataclass(frozen=True)
class DatasetClip:
    """One clip of a dataset; every per-frame field has the same ``T`` frames at ``fps``.

    Attributes:
        id: the clip's id (its path in the videos folder, without the suffix).
        motion: pose ``[T, 6]`` and expression ``[T, K]`` (a :class:`Motion`).
        audio_features: ``[T, D]`` features of the clip's audio (row ``t`` = frame ``t``).
        confidence: float32 ``[T]`` face-tracking confidence.
        has_face: bool ``[T]``: False where no face was found.
        landmarks: float32 ``[T, 478, 3]`` in the source video's pixels (NaN: no face).
        rest_landmarks: float32 ``[478, 3]``: the rest face the motion is relative to.
        audio: the sound track (mono); frame ``t`` covers ``[t / fps, (t + 1) / fps)`` s.
        reference_frames: uint8 ``[R, H, W, 3]`` portrait frames.
        reference_index: int64 ``[R]``: the frame each reference frame was taken at.
        meta: the clip's metadata (source, source fps and size, encoder, ...).
    """

    id: str
    motion: Motion
    audio_features: AudioFeatures
    confidence: torch.Tensor
    has_face: torch.Tensor
    landmarks: torch.Tensor
    rest_landmarks: torch.Tensor
    audio: Audio
    reference_frames: torch.Tensor
    reference_index: torch.Tensor
    meta: dict[str, Any]

    @property
    def num_frames(self) -> int:
        return self.motion.num_frames

    @property
    def fps(self) -> float:
        return self.motion.fps


def clip_from_file(path: str | Path) -> DatasetClip:
    """Read one clip file (see :mod:`talkingface.dataset.format`)."""
    tensors, meta = fmt.read_clip_file(path)
    fps = float(meta["fps"])
    motion = Motion(tensors["pose"], tensors["expression"], tuple(meta["expression_names"]), fps)
    names = meta.get("feature_names")
    features = AudioFeatures(
        tensors["audio_features"], fps, meta["feature_kind"], tuple(names) if names else None
    )
    t = motion.num_frames
    for key in ("audio_features", "confidence", "has_face", "landmarks"):
        if tensors[key].shape[0] != t:
            raise ValueError(f"{path}: {key} has {tensors[key].shape[0]} frames, motion has {t}")
    return DatasetClip(
        id=meta["id"],
        motion=motion,
        audio_features=features,
        confidence=tensors["confidence"],
        has_face=tensors["has_face"].bool(),
        landmarks=tensors["landmarks"],
        rest_landmarks=tensors["rest_landmarks"],
        audio=Audio(tensors["audio"], int(meta["audio_rate"])),
        reference_frames=tensors["reference_frames"],
        reference_index=tensors["reference_index"],
        meta=meta,
    )


class Dataset:
    """A built dataset, read lazily: the manifest now, each clip file when asked for.

    Args:
        root: the folder ``talkingface dataset build`` wrote (``--out``).

    Raises:
        InputError: no dataset there, or one of another format version.
    """

    def __init__(self, root: str | Path) -> None:
        self.root = Path(root)
        try:
            manifest = fmt.read_manifest(self.root)
        except ValueError as exc:
            raise InputError(str(exc)) from None
        if manifest is None:
            raise InputError(
                f"{self.root} has no {fmt.MANIFEST}: build one with "
                "`talkingface dataset build VIDEOS_DIR --out DATASET`"
            )
        self.manifest = manifest
        self.params: dict[str, Any] = manifest["params"]
        clips = manifest["clips"]
        self.ids: list[str] = [c["id"] for c in clips if c["status"] == "ok"]
        self.skipped: dict[str, str] = {c["id"]: c["reason"] for c in clips if c["status"] != "ok"}
        """Clips left out, with the reason (no face, no audio, unreadable, ...)."""

    def __len__(self) -> int:
        return len(self.ids)

    def __getitem__(self, key: int | str) -> DatasetClip:
        clip_id = self.ids[key] if isinstance(key, int) else key
        if clip_id not in self.ids:
            raise KeyError(
                f"no clip {clip_id!r} in {self.root}"
                + (f" (skipped: {self.skipped[clip_id]})" if clip_id in self.skipped else "")
            )
        return clip_from_file(fmt.clip_path(self.root, clip_id))

    def __iter__(self) -> Iterator[DatasetClip]:
        for clip_id in self.ids:
            yield self[clip_id]
