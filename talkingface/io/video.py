"""Reading real videos (frames + sound track) and describing media files, like ffprobe."""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import av
import numpy as np
import torch

from talkingface.io._common import DECODE_ERRORS, check_file, declared_seconds
from talkingface.io.audio import load_audio
from talkingface.pipeline.contracts import Audio
from talkingface.pipeline.errors import InputError


@dataclass(frozen=True)
class VideoClip:
    """A decoded video.

    Attributes:
        frames: uint8 ``[T, H, W, 3]`` RGB.
        fps: frame rate (the declared one; the average for variable-rate video).
        audio: its sound track as 16 kHz mono, or None when it has none.
    """

    frames: torch.Tensor
    fps: float
    audio: Audio | None


def read_video(
    path: str | Path, *, max_frames: int | None = None, size: int | None = None
) -> VideoClip:
    """Decode a video file whole into memory (for metrics on short real talking videos).

    Args:
        path: any video FFmpeg reads.
        max_frames: stop after this many frames (the audio is cut to match).
        size: if given, scale so that the shorter side is ``size`` pixels (aspect kept,
            sides rounded to even numbers).

    Raises:
        InputError: missing or unreadable file, or no video track.
    """
    path = Path(path)
    frames_iter = video_frames(path, max_frames=max_frames, size=size)
    fps, has_audio = next(frames_iter)
    frames = list(frames_iter)
    audio = None
    if has_audio:
        audio = load_audio(path)
        if max_frames is not None:
            audio = audio.slice(0, math.ceil(len(frames) / fps * audio.sample_rate))
    return VideoClip(torch.from_numpy(np.stack(frames)), fps, audio)


def video_frames(
    path: str | Path, *, max_frames: int | None = None, size: int | None = None
) -> Iterator:
    """Decode a video frame by frame: first ``(fps, has_audio)``, then uint8 ``[H, W, 3]`` RGB
    frames (at most ``max_frames``; ``size``: as in :func:`read_video`). Memory holds one frame.

    Raises:
        InputError: missing or unreadable file, no video track, no decodable frame.
    """
    path = Path(path)
    check_file(path, "video")
    count = 0
    try:
        with av.open(str(path)) as container:
            if not container.streams.video:
                raise InputError(f"{path} has no video track: give a video file (mp4, mov, mkv)")
            stream = container.streams.video[0]
            stream.thread_type = "AUTO"
            fps = _frame_rate(stream)
            if fps is None:
                raise InputError(f"{path} does not declare a frame rate: re-encode it as mp4")
            yield fps, bool(container.streams.audio)
            for frame in container.decode(stream):
                if max_frames is not None and count >= max_frames:
                    break
                width, height = frame.width, frame.height
                if size is not None:
                    scale = size / min(width, height)
                    width = max(2, round(width * scale / 2) * 2)
                    height = max(2, round(height * scale / 2) * 2)
                count += 1
                yield frame.to_ndarray(format="rgb24", width=width, height=height)
    except InputError:
        raise
    except DECODE_ERRORS as exc:
        raise InputError(f"cannot read {path} as a video: {exc}; give an mp4, mov or mkv") from exc
    if not count:
        raise InputError(f"{path} has no decodable video frames: give a non-empty video")


def probe_media(path: str | Path) -> dict:
    """Describe a media file, like ffprobe.

    Returns:
        ``{"video": {"frames", "fps", "width", "height", "duration", "codec"} | None,
        "audio": {"duration", "sample_rate", "codec"} | None, "metadata": {...}}``;
        durations in seconds.
    """
    path = Path(path)
    check_file(path, "media file")
    try:
        container = av.open(str(path))
    except DECODE_ERRORS as exc:
        raise InputError(f"cannot read {path} as a media file: {exc}") from exc
    with container:
        info: dict = {"video": None, "audio": None, "metadata": dict(container.metadata)}
        total = container.duration / 1e6 if container.duration is not None else None
        if container.streams.video:
            v = container.streams.video[0]
            info["video"] = {
                "frames": v.frames or _count_packets(path, "video"),
                "fps": _frame_rate(v),
                "width": v.codec_context.width,
                "height": v.codec_context.height,
                "duration": declared_seconds(v) or total,
                "codec": v.codec_context.name,
            }
        if container.streams.audio:
            a = container.streams.audio[0]
            info["audio"] = {
                "duration": declared_seconds(a) or total,
                "sample_rate": a.codec_context.sample_rate,
                "codec": a.codec_context.name,
            }
    return info


def _frame_rate(stream) -> float | None:
    """The nominal frame rate; the average one for variable-rate videos.

    The average (frames / duration) of one of our own files is off by the shortened last
    frame, so the declared rate wins whenever the two agree within 5 %.
    """
    declared = stream.guessed_rate or stream.base_rate
    average = stream.average_rate
    if declared and (not average or abs(float(declared) / float(average) - 1) < 0.05):
        return float(declared)
    return float(average) if average else None


def _count_packets(path: Path, kind: str) -> int:
    """Frame count for containers that do not store one (counts packets, decodes nothing)."""
    with av.open(str(path)) as container:
        stream = getattr(container.streams, kind)[0]
        return sum(1 for p in container.demux(stream) if p.size)
