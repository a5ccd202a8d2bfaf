"""Shared pieces of the media readers and writers: file checks, decoding errors, durations."""

from __future__ import annotations

from pathlib import Path

import av

from talkingface.pipeline.errors import InputError

DECODE_ERRORS = (av.error.FFmpegError, ValueError, RuntimeError, OSError)
"""What decoding errors look like: FFmpeg errors and decoders that choke on a truncated stream."""


def check_file(path: Path, what: str) -> None:
    if not path.exists():
        raise InputError(f"{what} not found: {path}; check the path")
    if path.is_dir():
        raise InputError(f"{path} is a directory: give the {what} inside it")



def declared_seconds(stream) -> float | None:
    if stream.duration is None or stream.time_base is None:
        return None
    return float(stream.duration * stream.time_base)
