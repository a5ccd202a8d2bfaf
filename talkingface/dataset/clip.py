"""Building one clip of a dataset (the work of one task, run in a worker process or a Ray
task): the motion track (:func:`talkingface.face.motion_track.extract_motion`), the chosen audio
encoder's features, the sound track and a few portrait frames of one video, as the bytes of a
clip file (:mod:`talkingface.dataset.format`)."""

from __future__ import annotations

import math
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import torch

from talkingface.dataset import format as fmt
from talkingface.pipeline.errors import InputError, TalkingFaceError


@dataclass(frozen=True)
class BuildSettings:
    """What every clip of a dataset is built with (recorded in the manifest; a rerun into the
    same folder must use the same).

    Attributes:
        fps: frame rate of the motion and feature rows.
        encoder: registered audio encoder name (``talkingface plugins``), e.g. ``visemes``.
        encoder_params: its config fields (``audio.params``).
        smoothing: the motion extractor's smoothing (``default``, ``none``, ...).
        reference_frames: portrait frames kept per clip (the first, then evenly spaced).
        reference_size: longest side of the kept portrait frames, pixels.
        max_seconds: use only the first N seconds of every video (None: all of it).
        min_face: a clip whose frames show a face less often than this fraction is skipped.
    """

    fps: float = 25.0
    encoder: str = "visemes"
    encoder_params: dict[str, Any] = field(default_factory=dict)
    smoothing: str = "default"
    reference_frames: int = 4
    reference_size: int = 512
    max_seconds: float | None = None
    min_face: float = 0.5

    def __post_init__(self) -> None:
        if not self.fps > 0:
            raise InputError(f"--fps must be positive, got {self.fps}")
        if self.reference_frames < 1:
            raise InputError("keep at least one reference frame per clip (--reference-frames)")
        if self.reference_size < 16:
            raise InputError(
                f"--reference-size must be at least 16 pixels, got {self.reference_size}"
            )
        if self.max_seconds is not None and not self.max_seconds > 0:
            raise InputError(f"--max-seconds must be positive, got {self.max_seconds}")
        if not 0.0 <= self.min_face <= 1.0:
            raise InputError(f"--min-face is a fraction of frames (0..1), got {self.min_face}")


@dataclass(frozen=True)
class ClipTask:
    """One video to turn into a clip."""

    id: str
    video: str
    source: str  # path relative to the videos folder, for the manifest
    settings: BuildSettings
    threads: int = 1


@dataclass(frozen=True)
class ClipResult:
    """What a task returns: the clip file's bytes, or the reason it was skipped.

    ``status``: ``ok``; ``skipped`` (the video is unusable: no face, no audio, unreadable;
    kept as final); ``failed`` (an unexpected error, retried by the next run).
    """

    id: str
    source: str
    status: str
    data: bytes | None = None
    reason: str = ""
    frames: int = 0
    seconds: float = 0.0


def _encoder(settings: BuildSettings):
    from talkingface.pipeline.registry import get_plugin_manager

    entry = get_plugin_manager().registry.get("audio", settings.encoder)
    encoder = entry.cls(dict(settings.encoder_params))
    encoder.ensure_loaded()
    return encoder


def check_settings(settings: BuildSettings) -> dict[str, Any]:
    """The manifest's ``params``: the settings plus what the encoder declares (its feature
    kind); a bad encoder name or parameter fails here, before any clip is read."""
    try:
        encoder = _encoder(settings)
    except TalkingFaceError:
        raise
    except Exception as exc:
        raise InputError(f"audio encoder {settings.encoder!r}: {exc}") from exc
    return {
        **asdict(settings),
        "feature_kind": encoder.feature_kind,
        "audio_rate": encoder.sample_rate,
    }


def _resize_longest(frames: torch.Tensor, longest: int) -> torch.Tensor:
    """uint8 ``[R, H, W, 3]`` scaled down (area filter) so the longer side is ``longest``."""
    h, w = frames.shape[1:3]
    scale = longest / max(h, w)
    if scale >= 1:
        return frames
    size = (max(1, round(h * scale)), max(1, round(w * scale)))
    x = torch.nn.functional.interpolate(frames.permute(0, 3, 1, 2).float(), size=size, mode="area")
    return x.round().clamp(0, 255).to(torch.uint8).permute(0, 2, 3, 1).contiguous()


def reference_indices(has_face: torch.Tensor, count: int) -> list[int]:
    """Frames to keep as portraits: the first, then ``count - 1`` more spread evenly over the
    frames that show a face."""
    t = int(has_face.shape[0])
    faces = torch.nonzero(has_face).flatten().tolist() or list(range(t))
    picks = [0] + [faces[round(i)] for i in torch.linspace(0, len(faces) - 1, count)[1:].tolist()]
    return sorted(set(picks))


def _frames_at(video: str, indices: Sequence[int], max_frames: int | None) -> torch.Tensor:
    from talkingface.io import video_frames

    wanted, out = set(indices), {}
    frames = video_frames(video, max_frames=max_frames)
    next(frames)  # (fps, has_audio)
    for i, frame in enumerate(frames):
        if i in wanted:
            out[i] = torch.from_numpy(frame)
        if len(out) == len(wanted):
            frames.close()
            break
    return torch.stack([out[i] for i in sorted(out)])


def build_clip(task: ClipTask) -> dict[str, Any]:
    """Everything one clip file holds: ``(tensors, meta)`` as a dict with those two keys.

    Raises:
        InputError: the video cannot make a clip (unreadable, no audio, too few faces).
    """
    from talkingface.face.motion_track import extract_motion
    from talkingface.io import load_audio, probe_media

    s = task.settings
    info = probe_media(task.video)
    if info.get("video") is None:
        raise InputError("no video track")
    if info.get("audio") is None:
        raise InputError("no audio track: a clip needs its speech")
    source_fps = float(info["video"]["fps"] or s.fps)
    max_frames = None if s.max_seconds is None else math.ceil(s.max_seconds * source_fps)
    track = extract_motion(task.video, fps=s.fps, smoothing=s.smoothing, max_frames=max_frames)
    has_face = torch.as_tensor(track.has_face).bool()
    face_fraction = float(has_face.float().mean()) if has_face.numel() else 0.0
    if track.rest is None or not has_face.any():
        raise InputError("no face found in the video")
    if face_fraction < s.min_face:
        raise InputError(
            f"a face in {face_fraction:.0%} of the frames (--min-face {s.min_face:.0%})"
        )

    encoder = _encoder(s)
    audio = load_audio(task.video, target_rate=encoder.sample_rate)
    if s.max_seconds is not None:
        audio = audio.slice(0, int(round(s.max_seconds * audio.sample_rate)))
    features = encoder.encode(audio, s.fps)
    motion = track.motion
    t = min(motion.num_frames, features.values.shape[0])
    if t == 0:
        raise InputError("no frames with both motion and audio")
    audio = audio.slice(0, min(audio.num_samples, math.ceil(t * audio.sample_rate / s.fps)))

    ref_index = reference_indices(has_face[:t], s.reference_frames)
    # The track is at s.fps; the portrait frames come from the source video at its own rate.
    source_index = [
        min(round(i * source_fps / s.fps), (max_frames or 10**12) - 1) for i in ref_index
    ]
    refs = _resize_longest(_frames_at(task.video, source_index, max_frames), s.reference_size)
    tensors = {
        "pose": motion.pose[:t].float(),
        "expression": motion.expression[:t].float(),
        "confidence": torch.as_tensor(track.confidence)[:t].float(),
        "has_face": has_face[:t].to(torch.uint8),
        "landmarks": torch.as_tensor(track.landmarks)[:t].float(),
        "rest_landmarks": torch.as_tensor(track.rest.points).float(),
        "audio_features": features.values[:t].float(),
        "audio": audio.samples.float(),
        "reference_frames": refs,
        "reference_index": torch.tensor(ref_index[: len(refs)], dtype=torch.int64),
    }
    meta = {
        "id": task.id,
        "source": task.source,
        "frames": t,
        "fps": s.fps,
        "seconds": t / s.fps,
        "expression_names": list(motion.names),
        "feature_kind": features.kind,
        "feature_names": list(features.names) if features.names else None,
        "encoder": s.encoder,
        "audio_rate": audio.sample_rate,
        "source_fps": track.source_fps,
        "source_size": list(track.size),
        "rest_frame": track.rest.frame,
        "face_fraction": face_fraction,
    }
    return {"tensors": tensors, "meta": meta}


def run_task(task: ClipTask) -> ClipResult:
    """Build one clip; never raises (an unusable video is ``skipped``, a bug ``failed``).
    Runs in a worker process, a Ray task, or the caller's process (whose torch thread count
    is restored afterwards)."""
    start = time.perf_counter()
    threads_before = torch.get_num_threads()
    if task.threads:
        torch.set_num_threads(task.threads)
    try:
        built = build_clip(task)
        data = fmt.encode_clip(built["tensors"], built["meta"])
        status, reason, frames = "ok", "", built["meta"]["frames"]
    except TalkingFaceError as exc:
        data, status, reason, frames = None, "skipped", " ".join(str(exc).split()), 0
    except Exception as exc:  # noqa: BLE001 - reported in the manifest, retried next run
        data, status, frames = None, "failed", 0
        reason = f"internal error: {type(exc).__name__}: {' '.join(str(exc).split())}"
    finally:
        torch.set_num_threads(threads_before)
    return ClipResult(
        task.id, task.source, status, data, reason, frames, time.perf_counter() - start
    )
