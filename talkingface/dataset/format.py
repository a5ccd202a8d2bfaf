"""The on-disk format of a talkingface dataset (version 1): one safetensors file per clip and a
JSON manifest, written so that a killed build never leaves a half-written file behind.

    DATASET/
      manifest.json             format, version, build settings, one entry per clip
      clips/<clip id>.safetensors

A clip file holds, all aligned to the same ``T`` frames at the dataset's ``fps``:

    pose               float32 [T, 6]        yaw, pitch, roll (radians), tx, ty, scale
    expression         float32 [T, K]        semantic coefficients (names in the metadata)
    confidence         float32 [T]           face-tracking confidence, 0..1
    has_face           uint8   [T]           1 where a face was found (else motion is held)
    landmarks          float32 [T, 478, 3]   MediaPipe landmarks, source-video pixels (NaN: no face)
    rest_landmarks     float32 [478, 3]      the rest face pose and expression are relative to
    audio_features     float32 [T, D]        the chosen encoder's features of the clip's audio
    audio              float32 [S]           the sound track, mono, at ``audio_rate``
    reference_frames   uint8   [R, H, W, 3]  portrait frames (the first, then evenly spaced)
    reference_index    int64   [R]           their frame indices

and, as the safetensors metadata key ``talkingface``, a JSON object with the clip's id, source
path, frame count, expression names, feature kind and names, source fps and size, the rest
face's source frame, and the format name and version. The manifest's clip entries are rebuilt
from these headers when a build was killed between writing a clip and recording it.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import torch

FORMAT = "talkingface-dataset"
VERSION = 1
MANIFEST = "manifest.json"
CLIPS_DIR = "clips"
CLIP_SUFFIX = ".safetensors"
TEMP_SUFFIX = ".tmp"
METADATA_KEY = "talkingface"

CLIP_TENSORS = (
    "pose", "expression", "confidence", "has_face", "landmarks", "rest_landmarks",
    "audio_features", "audio", "reference_frames", "reference_index",
)  # fmt: skip
"""Every tensor a version-1 clip file holds."""


def clip_path(root: str | Path, clip_id: str) -> Path:
    """Where the clip ``clip_id`` of the dataset at ``root`` lives."""
    return Path(root) / CLIPS_DIR / f"{clip_id}{CLIP_SUFFIX}"


def encode_clip(tensors: dict[str, torch.Tensor], meta: dict[str, Any]) -> bytes:
    """A clip file's bytes: ``tensors`` (every name of :data:`CLIP_TENSORS`) and ``meta``
    (stored as JSON with the format name and version added)."""
    from safetensors.torch import save

    missing = set(CLIP_TENSORS) - set(tensors)
    if missing:
        raise ValueError(f"a clip needs the tensors {sorted(missing)}")
    header = {"format": FORMAT, "version": VERSION, **meta}
    data = {k: v.detach().cpu().contiguous() for k, v in tensors.items()}
    return save(data, metadata={METADATA_KEY: json.dumps(header)})


def read_clip_file(path: str | Path) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    """The tensors and metadata of a clip file (checks the format and version)."""
    from safetensors import safe_open

    meta = read_clip_meta(path)
    with safe_open(str(path), framework="pt") as f:
        tensors = {k: f.get_tensor(k) for k in f.keys()}  # noqa: SIM118 - not a dict
    return tensors, meta


def read_clip_meta(path: str | Path) -> dict[str, Any]:
    """The metadata of a clip file without reading its tensors."""
    from safetensors import safe_open

    with safe_open(str(path), framework="pt") as f:
        raw = (f.metadata() or {}).get(METADATA_KEY)
    if raw is None:
        raise ValueError(f"{path} is not a {FORMAT} clip (no '{METADATA_KEY}' metadata)")
    meta = json.loads(raw)
    check_version(meta, str(path))
    return meta


def check_version(data: dict[str, Any], where: str) -> None:
    """Refuse a file of another format, or of a version this code does not read."""
    if data.get("format") != FORMAT:
        raise ValueError(f"{where} is not a {FORMAT} file (format {data.get('format')!r})")
    if data.get("version") != VERSION:
        raise ValueError(
            f"{where} is {FORMAT} version {data.get('version')}, this talkingface reads version "
            f"{VERSION}: rebuild the dataset with this version (talkingface dataset build)"
        )


def write_atomic(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` through a temporary file in the same folder and a rename, so
    a reader (or a killed run) sees the old file or the whole new one, never a part."""
    tmp = path.with_name(f"{path.name}.{os.getpid()}{TEMP_SUFFIX}")
    try:
        with open(tmp, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def read_manifest(root: str | Path) -> dict[str, Any] | None:
    """The manifest of the dataset at ``root``, or None when there is none yet."""
    path = Path(root) / MANIFEST
    if not path.exists():
        return None
    data = json.loads(path.read_text(encoding="utf-8"))
    check_version(data, str(path))
    return data


def write_manifest(root: str | Path, manifest: dict[str, Any]) -> None:
    """Write the manifest atomically (clips sorted by id, so reruns give the same file)."""
    manifest = {**manifest, "clips": sorted(manifest["clips"], key=lambda c: c["id"])}
    text = json.dumps(manifest, indent=1, ensure_ascii=False) + "\n"
    write_atomic(Path(root) / MANIFEST, text.encode("utf-8"))
