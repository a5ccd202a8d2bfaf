"""What the live page may upload, checked by decoding: a portrait (jpg/png/webp) and an audio
clip to play. Limits are enforced on the bytes before and while decoding; nothing from the
client names a file on the server (audio is decoded from a temporary file this module makes).
"""

from __future__ import annotations

import io
import tempfile
from dataclasses import dataclass

import numpy as np

from talkingface.pipeline.contracts import Audio, Portrait
from talkingface.pipeline.errors import InputError

MAX_IMAGE_BYTES = 20 * 1024 * 1024
MAX_IMAGE_SIDE = 8000
MAX_AUDIO_BYTES = 50 * 1024 * 1024
MAX_AUDIO_SECONDS = 600.0
"""Longest clip the page may play (its decoded samples are sent back to the page)."""
IMAGE_FORMATS = {"JPEG": "jpg", "PNG": "png", "WEBP": "webp"}


@dataclass(frozen=True)
class UploadError(Exception):
    """An upload refused; ``status`` is the HTTP status to answer with."""

    message: str
    status: int = 400

    def __str__(self) -> str:
        return self.message


def check_size(data: bytes, limit: int, what: str) -> None:
    if not data:
        raise UploadError(f"the {what} upload is empty: choose a file")
    if len(data) > limit:
        raise UploadError(f"the {what} is {len(data) / 2**20:.1f} MB; the limit is "
                          f"{limit // 2**20} MB", status=413)


def decode_portrait(data: bytes) -> Portrait:
    """A portrait from uploaded bytes: JPEG, PNG or WebP, at most ``MAX_IMAGE_SIDE`` pixels a
    side (checked from the header, before the pixels are decoded) and ``MAX_IMAGE_BYTES``."""
    from PIL import Image, UnidentifiedImageError

    from talkingface.io import load_image

    check_size(data, MAX_IMAGE_BYTES, "image")
    try:
        with Image.open(io.BytesIO(data)) as img:
            if img.format not in IMAGE_FORMATS:
                raise UploadError(f"a {img.format or 'unknown'} image is not accepted: upload a "
                                  "jpg, png or webp portrait", status=415)
            width, height = img.size
            if max(width, height) > MAX_IMAGE_SIDE:
                raise UploadError(f"the image is {width}x{height} pixels; at most "
                                  f"{MAX_IMAGE_SIDE} a side is accepted: scale it down",
                                  status=413)
            img.load()
            portrait = load_image(img)
    except UnidentifiedImageError:
        raise UploadError("that file is not an image this server can read: upload a jpg, png "
                          "or webp portrait", status=415) from None
    except (OSError, SyntaxError, ValueError) as exc:
        if isinstance(exc, InputError):
            raise UploadError(str(exc)) from None
        raise UploadError(f"the image could not be decoded ({exc}): upload an undamaged jpg, "
                          "png or webp file", status=415) from None
    return Portrait(portrait.pixels, source="uploaded portrait")


def decode_audio(data: bytes, rate: int) -> Audio:
    """Mono audio at ``rate`` from uploaded bytes of any format FFmpeg decodes, at most
    ``MAX_AUDIO_BYTES`` and ``MAX_AUDIO_SECONDS``."""
    from talkingface.io import load_audio

    check_size(data, MAX_AUDIO_BYTES, "audio file")
    with tempfile.NamedTemporaryFile(prefix="talkingface-upload-", suffix=".audio") as file:
        file.write(data)
        file.flush()
        try:
            clip = load_audio(file.name, target_rate=rate)
        except Exception as exc:  # noqa: BLE001 - any decoder failure on untrusted bytes
            # The message would name our temporary file; say what the user can act on.
            reason = str(exc).replace(file.name, "the uploaded file")
            if not isinstance(exc, InputError):
                reason = f"it is not audio FFmpeg can decode ({type(exc).__name__})"
            raise UploadError(f"the audio could not be used: {reason}", status=415) from None
    if clip.duration > MAX_AUDIO_SECONDS:
        raise UploadError(f"the clip is {clip.duration:.0f} s long; at most "
                          f"{MAX_AUDIO_SECONDS:.0f} s can be played: cut it", status=413)
    return clip


def pcm16(audio: Audio) -> bytes:
    """Little-endian int16 samples of a mono clip (what the page plays and streams back)."""
    samples = np.clip(audio.samples.numpy(), -1.0, 1.0)
    return (samples * 32767.0).round().astype("<i2").tobytes()
