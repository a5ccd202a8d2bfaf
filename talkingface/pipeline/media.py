"""Media I/O: load portraits and speech from files or arrays, read real videos, and write the
talking-face MP4 (H.264 + AAC, trimmed to the audio, with provenance metadata) or PNG frames.
"""

from __future__ import annotations

import contextlib
import functools
import json
import math
import os
import tempfile
import warnings
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import BinaryIO

import av
import numpy as np
import PIL.Image
import PIL.ImageOps
import torch

from talkingface.pipeline.contracts import Audio, Frames, Portrait, num_frames_for
from talkingface.pipeline.errors import ConfigError, InputError

MIN_IMAGE_SIDE = 64
"""Smallest accepted portrait side in pixels: below this no face analysis can work."""

MIN_AUDIO_SECONDS = 0.05
"""Shortest accepted speech clip: less than one video frame at 20 fps is no clip at all."""

PROVENANCE = "AI-generated talking-face video (synthetic)"
"""Every written video says what it is: this goes into its title and comment."""

X264_PRESETS = (
    "ultrafast",
    "superfast",
    "veryfast",
    "faster",
    "fast",
    "medium",
    "slow",
    "slower",
    "veryslow",
)
"""libx264 speed presets, fastest first (slower ones give smaller files at the same crf)."""

# Sample rates the AAC encoder accepts as they are; anything else is encoded at 48 kHz.
_AAC_RATES = (8000, 11025, 12000, 16000, 22050, 24000, 32000, 44100, 48000, 64000, 88200, 96000)

# What decoding errors look like: FFmpeg errors and decoders that choke on a truncated stream.
_DECODE_ERRORS = (av.error.FFmpegError, ValueError, RuntimeError, OSError)


# --------------------------------------------------------------------------------- images


def load_image(src: str | Path | np.ndarray | torch.Tensor | PIL.Image.Image) -> Portrait:
    """Load a portrait as RGB uint8 ``[H, W, 3]``.

    Files: anything Pillow reads (jpg, png, webp, bmp, ...); EXIF orientation is applied,
    transparency is composited on white, grayscale and palette images become RGB.
    Arrays and tensors: uint8 (0..255) or float (0..1), ``[H, W]``, ``[H, W, 3]`` or
    ``[H, W, 4]``; channels-first ``[3, H, W]`` (or ``[1|4, H, W]``) is accepted too.

    Raises:
        InputError: missing file, a directory, not an image, an empty array, or a side
            shorter than ``MIN_IMAGE_SIDE`` pixels.
    """
    if isinstance(src, (str, Path)):
        path = Path(src)
        _check_file(path, "image")
        try:
            with PIL.Image.open(path) as img:
                img.load()
                pixels = _pil_to_rgb(img)
        except InputError:
            raise
        except (PIL.UnidentifiedImageError, OSError, ValueError, SyntaxError) as exc:
            raise InputError(
                f"cannot read {path} as an image (jpg, png, webp): {exc}; "
                "give a portrait photo in one of these formats"
            ) from exc
        source = str(path)
    elif isinstance(src, PIL.Image.Image):
        pixels, source = _pil_to_rgb(src), "<PIL.Image>"
    elif isinstance(src, (np.ndarray, torch.Tensor)):
        pixels, source = _array_to_rgb(src), "<array>"
    else:
        raise InputError(
            f"cannot load a portrait from a {type(src).__name__}: give a file path, "
            "a numpy array, a torch tensor or a PIL image"
        )
    h, w = pixels.shape[:2]
    if min(h, w) < MIN_IMAGE_SIDE:
        raise InputError(
            f"image {source} is {w}x{h} pixels: give a portrait at least {MIN_IMAGE_SIDE} px "
            "on each side (256 px or more works best)"
        )
    return Portrait(torch.from_numpy(np.ascontiguousarray(pixels)), source)


def _pil_to_rgb(img: PIL.Image.Image) -> np.ndarray:
    """``[H, W, 3]`` uint8 from any Pillow image, upright and opaque."""
    img = PIL.ImageOps.exif_transpose(img)
    if img.mode in ("I;16", "I;16B", "I;16L", "I"):
        # 16/32-bit grayscale: Pillow's convert("L") clips instead of scaling.
        gray = np.asarray(img, dtype=np.float64)
        top = 65535.0 if img.mode.startswith("I;16") or gray.max() > 255 else 255.0
        return _array_to_rgb((gray / top).astype(np.float32))
    if img.mode == "F":
        return _array_to_rgb(np.asarray(img, dtype=np.float32))
    if img.mode in ("RGBA", "LA", "PA") or (img.mode == "P" and "transparency" in img.info):
        return _composite_on_white(np.asarray(img.convert("RGBA")))
    return np.array(img.convert("RGB"))  # a writable copy: torch refuses read-only memory


def _composite_on_white(rgba: np.ndarray) -> np.ndarray:
    """``[H, W, 4]`` uint8 -> ``[H, W, 3]`` uint8 over a white background."""
    alpha = rgba[..., 3:4].astype(np.float32) / 255.0
    rgb = rgba[..., :3].astype(np.float32) * alpha + 255.0 * (1.0 - alpha)
    return (rgb + 0.5).astype(np.uint8)


def _array_to_rgb(arr: np.ndarray | torch.Tensor) -> np.ndarray:
    """``[H, W, 3]`` uint8 from an image array of any accepted layout and dtype."""
    if isinstance(arr, torch.Tensor):
        arr = arr.detach().cpu()
        if arr.dtype in (torch.bfloat16, torch.float16):
            arr = arr.float()
        arr = arr.numpy()
    if arr.size == 0:
        raise InputError(f"the image array is empty (shape {tuple(arr.shape)}): give a portrait")
    if arr.ndim == 3 and arr.shape[0] in (1, 3, 4) and arr.shape[-1] not in (1, 3, 4):
        arr = np.moveaxis(arr, 0, -1)
    if arr.ndim == 3 and arr.shape[-1] == 1:
        arr = arr[..., 0]
    if arr.ndim not in (2, 3) or (arr.ndim == 3 and arr.shape[-1] not in (3, 4)):
        raise InputError(
            f"an image array must be [H, W], [H, W, 3] or [H, W, 4] (or [3, H, W]), "
            f"got shape {tuple(arr.shape)}"
        )
    if arr.dtype == np.uint8:
        u8 = arr
    elif np.issubdtype(arr.dtype, np.floating):
        if not np.isfinite(arr).all():
            raise InputError("the image array has NaN or infinite values: give finite pixels")
        if arr.min() < -1e-3 or arr.max() > 1.0 + 1e-3:
            raise InputError(
                f"a float image must be in 0..1, got values in {arr.min():.3g}..{arr.max():.3g}: "
                "divide 0..255 pixels by 255 or pass uint8"
            )
        u8 = (np.clip(arr, 0.0, 1.0) * 255.0 + 0.5).astype(np.uint8)
    elif arr.dtype == np.uint16:
        u8 = (arr // 257).astype(np.uint8)
    else:
        raise InputError(f"an image array must be uint8 or float (0..1), got {arr.dtype}")
    if u8.ndim == 2:
        return np.repeat(u8[..., None], 3, axis=-1)
    if u8.shape[-1] == 4:
        return _composite_on_white(u8)
    return u8


# --------------------------------------------------------------------------------- audio


def load_audio(
    src: str | Path | np.ndarray | torch.Tensor | Audio,
    *,
    sample_rate: int | None = None,
    target_rate: int = 16000,
) -> Audio:
    """Load speech as mono float32 ``[S]`` in -1..1 at ``target_rate``.

    Files: anything FFmpeg decodes (wav, flac, mp3, ogg, m4a, ...), including the audio track
    of a video. Channels are averaged to mono; the rate is converted once, while decoding
    (libswresample). Arrays and tensors: ``[S]``, ``[C, S]`` or ``[S, C]`` (the shorter axis
    is channels), float in -1..1 or int16/int32; they need ``sample_rate`` and are resampled
    with :func:`resample`. ``sample_rate`` is ignored for files (they carry their own).
    :func:`stream_audio_file` decodes a file chunk by chunk into the very same samples.

    Raises:
        InputError: missing or unreadable file, no audio track, an array without
            ``sample_rate``, NaN/inf samples, or less than ``MIN_AUDIO_SECONDS`` of sound.
    """
    if isinstance(src, (str, Path)):
        path = Path(src)
        chunks = stream_audio_file(path, target_rate=target_rate, chunk_samples=_LOAD_BLOCK)
        samples = torch.cat([chunk.samples for chunk in chunks])
        source = str(path)
    elif isinstance(src, (np.ndarray, torch.Tensor, Audio)):
        if isinstance(src, Audio):
            src, sample_rate = src.samples, src.sample_rate
        if sample_rate is None:
            raise InputError(
                "an audio array needs its sample rate: call load_audio(array, sample_rate=...)"
            )
        if int(sample_rate) != sample_rate or sample_rate <= 0:
            raise InputError(f"sample_rate must be a positive whole number, got {sample_rate!r}")
        mono = _array_to_mono(src)
        samples = resample(mono, int(sample_rate), target_rate).clamp_(-1.0, 1.0)
        source = "<array>"
    else:
        raise InputError(
            f"cannot load audio from a {type(src).__name__}: give a file path, "
            "a numpy array or a torch tensor"
        )
    if samples.numel() < MIN_AUDIO_SECONDS * target_rate:
        raise _empty_audio_error(source, samples.numel(), target_rate)
    return Audio(samples.contiguous(), target_rate)


# Decoders (AAC, MP3) may emit up to this much encoder padding after the last real sample.
_PADDING_S = 0.1
# Samples per block when load_audio decodes a file whole.
_LOAD_BLOCK = 1 << 20


def stream_audio_file(
    src: str | Path,
    *,
    target_rate: int = 16000,
    chunk_samples: int,
) -> Iterator[Audio]:
    """Decode an audio file incrementally into consecutive mono chunks at ``target_rate``.

    The chunks are exactly ``load_audio(src, target_rate=target_rate).chunks(chunk_samples)``
    (same samples, same offsets; the last chunk may be shorter), but the decoded clip is
    never held whole: memory stays bounded by a chunk plus the decoder's padding margin
    (``_PADDING_S``) however long the file is. libswresample converts the rate as a stream,
    so chunk boundaries do not change a sample.

    A missing file, a file FFmpeg cannot open or one without an audio track fails here, before
    the first chunk is asked for. A clip shorter than ``MIN_AUDIO_SECONDS`` fails before the
    first chunk comes out; damage in the middle of the file (a decoding error, NaN samples)
    fails when decoding reaches it, with the same messages as :func:`load_audio`.

    Raises:
        InputError: as :func:`load_audio`.
    """
    if not isinstance(chunk_samples, int) or chunk_samples <= 0:
        raise ValueError(f"chunk_samples must be a positive int, got {chunk_samples!r}")
    path = Path(src)
    _check_file(path, "audio file")
    try:
        container = av.open(str(path))
    except _DECODE_ERRORS as exc:
        raise InputError(
            f"cannot decode audio from {path}: {exc}; give a wav, flac, mp3, ogg or m4a file"
        ) from exc
    if not container.streams.audio:
        container.close()
        raise InputError(
            f"{path} has no audio track: give a speech file (wav, flac, mp3, ogg, m4a) "
            "or a video with sound"
        )
    return _file_chunks(container, path, target_rate, chunk_samples)


def _file_chunks(container, path: Path, rate: int, size: int) -> Iterator[Audio]:
    """Chunks of ``size`` samples of the decoded, trimmed and clipped sound of ``container``.

    The last ``holdback`` decoded samples are always held back: they may be encoder padding
    that only the end of the stream can tell (see the trimming below). Before the first chunk,
    enough is decoded that the clip cannot turn out to be shorter than ``MIN_AUDIO_SECONDS``.
    """
    holdback = math.ceil(_PADDING_S * rate) + 1
    first = max(size, math.ceil(MIN_AUDIO_SECONDS * rate)) + holdback
    pending: list[np.ndarray] = []
    pending_n = emitted = 0
    with container:
        stream = container.streams.audio[0]
        for piece in _decoded_pieces(container, stream, path, rate):
            pending.append(piece)
            pending_n += piece.size
            if pending_n < (size + holdback if emitted else first):
                continue
            buffer = np.concatenate(pending)
            ready = (pending_n - holdback) // size * size
            for start in range(0, ready, size):
                yield _audio_chunk(buffer[start : start + size], rate, emitted + start, path)
            pending, pending_n, emitted = [buffer[ready:]], pending_n - ready, emitted + ready
        declared = _declared_seconds(stream)  # read at the end: some demuxers update it
    tail = np.concatenate(pending) if pending else np.zeros(0, np.float32)
    total = emitted + tail.size
    if declared is not None:
        # AAC and MP3 decoders emit the encoder's padding after the last real sample; the
        # container's duration says where the sound ends. Only trust it for a small excess
        # (which is less than the holdback, so none of it has been sent yet).
        keep = round(declared * rate)
        if keep < total <= keep + _PADDING_S * rate:
            tail = tail[: keep - emitted]
    if not np.isfinite(tail).all():  # checked before the length, as load_audio always did
        raise _nan_audio_error(path)
    if emitted + tail.size < MIN_AUDIO_SECONDS * rate:
        raise _empty_audio_error(str(path), emitted + tail.size, rate)
    for start in range(0, tail.size, size):
        yield _audio_chunk(tail[start : start + size], rate, emitted + start, path)


def _decoded_pieces(container, stream, path: Path, rate: int) -> Iterator[np.ndarray]:
    """Mono float32 pieces of the first audio track at ``rate``, in decode order."""
    # Keep the channel layout and average here: libswresample's own stereo -> mono
    # matrix scales each channel by 1/sqrt(2), not 1/2. Averaging commutes with resampling.
    resampler = av.AudioResampler(format="fltp", rate=rate)
    try:
        for frame in container.decode(stream):
            frame.pts = None  # samples are joined in decode order; gaps in pts do not matter
            for out in resampler.resample(frame):
                yield out.to_ndarray().mean(axis=0).astype(np.float32, copy=False)
        for out in resampler.resample(None):
            yield out.to_ndarray().mean(axis=0).astype(np.float32, copy=False)
    except _DECODE_ERRORS as exc:
        raise InputError(
            f"cannot decode audio from {path}: {exc}; the file may be damaged, "
            "re-export it as wav or flac"
        ) from exc


def _audio_chunk(samples: np.ndarray, rate: int, offset: int, path: Path) -> Audio:
    if not np.isfinite(samples).all():
        raise _nan_audio_error(path)
    # A copy: the chunk must not keep the decoding buffer it was cut from alive.
    return Audio(torch.from_numpy(np.clip(samples, -1.0, 1.0)), rate, offset)


def _nan_audio_error(path: Path) -> InputError:
    return InputError(f"cannot decode audio from {path}: it decodes to NaN or infinite samples")


def _empty_audio_error(source: str, samples: int, rate: int) -> InputError:
    return InputError(
        f"audio in {source} is empty ({samples / rate:.3f} s): "
        f"give a clip with at least {MIN_AUDIO_SECONDS} s of speech"
    )


def _declared_seconds(stream) -> float | None:
    if stream.duration is None or stream.time_base is None:
        return None
    return float(stream.duration * stream.time_base)


def _array_to_mono(arr: np.ndarray | torch.Tensor) -> torch.Tensor:
    """float32 ``[S]`` in -1..1 from an audio array ``[S]``, ``[C, S]`` or ``[S, C]``."""
    x = arr.detach() if isinstance(arr, torch.Tensor) else torch.from_numpy(np.asarray(arr))
    if x.numel() == 0:
        raise InputError(
            f"the audio array is empty (shape {tuple(x.shape)}): give at least "
            f"{MIN_AUDIO_SECONDS} s of speech"
        )
    if x.ndim not in (1, 2):
        raise InputError(f"an audio array must be [S], [C, S] or [S, C], got {tuple(x.shape)}")
    full_scale = {torch.int16: 32768.0, torch.int32: 2147483648.0}.get(x.dtype)
    if full_scale is not None:
        x = x.double() / full_scale
    elif not x.is_floating_point():
        raise InputError(f"audio samples must be float (-1..1), int16 or int32, got {x.dtype}")
    if not torch.isfinite(x).all():
        raise InputError("the audio array has NaN or infinite samples: give finite samples")
    if x.ndim == 2:
        x = x.double().mean(dim=0 if x.shape[0] <= x.shape[1] else 1)
    peak = float(x.abs().max())
    if peak > 2.0:
        raise InputError(
            f"float audio must be in -1..1, got a peak of {peak:.4g}: "
            "divide int16 samples by 32768 or pass the int16 array itself"
        )
    return x.float()


def resample(
    samples: torch.Tensor,
    orig_rate: int,
    new_rate: int,
    *,
    zero_crossings: int = 24,
    rolloff: float = 0.945,
    beta: float = 12.0,
) -> torch.Tensor:
    """Band-limited resampling with a Kaiser-windowed sinc, as a polyphase convolution.

    Args:
        samples: float ``[..., S]`` (any leading dims; any device).
        orig_rate, new_rate: sample rates in Hz.
        zero_crossings: sinc zero crossings on each side of a tap centre (filter length).
        rolloff: passband edge as a fraction of the lower Nyquist frequency.
        beta: Kaiser window shape (12 keeps the stopband below -100 dB).

    Returns:
        ``[..., ceil(S * new_rate / orig_rate)]`` float32, sample ``n`` at time ``n / new_rate``.
    """
    if orig_rate <= 0 or new_rate <= 0:
        raise ValueError(f"sample rates must be positive, got {orig_rate} -> {new_rate}")
    x = samples.float()
    if orig_rate == new_rate:
        return x.clone()
    g = math.gcd(orig_rate, new_rate)
    up, down = new_rate // g, orig_rate // g
    n_in = x.shape[-1]
    n_out = math.ceil(n_in * up / down)
    lead = x.shape[:-1]
    x = x.reshape(-1, n_in)
    # Filter cutoff in cycles per input sample, and half-width in input samples.
    cutoff = rolloff * 0.5 * min(1.0, up / down)
    half = zero_crossings / (2.0 * cutoff)
    width = math.ceil(half)
    taps = down + 2 * width + 1
    if up * taps <= 1 << 22:
        # conv1d is slow with few output channels: take several blocks per stride instead.
        blocks = max(1, 32 // up)
        y = _resample_polyphase(x, up * blocks, down * blocks, cutoff, half, width, beta, n_out)
    else:
        y = _resample_direct(x, up, down, cutoff, half, width, beta, n_out)
    return y.reshape(*lead, n_out)


def _sinc_kernel(offsets: torch.Tensor, cutoff: float, half: float, beta: float) -> torch.Tensor:
    """Tap weights at ``offsets`` (input samples from the output instant), float64."""
    window = torch.special.i0(beta * torch.sqrt(torch.clamp(1 - (offsets / half) ** 2, min=0)))
    window = window / torch.special.i0(torch.tensor(beta, dtype=torch.float64))
    return 2 * cutoff * torch.sinc(2 * cutoff * offsets) * window * (offsets.abs() <= half)


@functools.lru_cache(maxsize=8)
def _polyphase_kernel(up, down, cutoff, half, width, beta) -> torch.Tensor:
    """float32 ``[up, down + 2 * width + 1]``: one filter per output phase (cached: building
    it costs more than resampling a short clip)."""
    taps = down + 2 * width + 1
    # Output sample (block k, phase j) sits at input time k*down + j*down/up; filter j's tap i
    # reads input sample k*down - width + i.
    phase_time = torch.arange(up, dtype=torch.float64)[:, None] * down / up
    offsets = torch.arange(taps, dtype=torch.float64)[None, :] - width - phase_time
    return _sinc_kernel(offsets, cutoff, half, beta).float()


def _resample_polyphase(x, up, down, cutoff, half, width, beta, n_out) -> torch.Tensor:
    """One conv1d: ``up`` phase filters slide over the input in strides of ``down`` samples."""
    taps = down + 2 * width + 1
    kernel = _polyphase_kernel(up, down, cutoff, half, width, beta).to(x.device)
    blocks = math.ceil(n_out / up)
    need = (blocks - 1) * down + taps
    x = torch.nn.functional.pad(x, (width, max(0, need - width - x.shape[-1])))
    y = torch.nn.functional.conv1d(x[:, None, :], kernel[:, None, :], stride=down)
    return y.transpose(1, 2).reshape(x.shape[0], -1)[:, :n_out]


def _resample_direct(x, up, down, cutoff, half, width, beta, n_out) -> torch.Tensor:
    """Taps read from a finely sampled kernel table, for rate pairs with too many phases."""
    oversample = 512  # table steps per input sample; linear interpolation between them
    grid = torch.arange(-(width + 2) * oversample, (width + 2) * oversample + 1)
    table = _sinc_kernel(grid.double() / oversample, cutoff, half, beta).float().to(x.device)
    out = torch.empty(x.shape[0], n_out, device=x.device)
    # Input sample floor(t) - width + i is tap i; padding shifts indices by width.
    padded = torch.nn.functional.pad(x, (width, width + 2))
    span = torch.arange(2 * width + 2, device=x.device)
    for start in range(0, n_out, 16384):
        n = torch.arange(start, min(n_out, start + 16384), dtype=torch.float64, device=x.device)
        t = n * down / up
        base = torch.floor(t)
        # Table position of tap i for output n: (i - width - (t - floor t)) samples.
        pos = (span[None, :] + 2 - (t - base).float()[:, None]) * oversample
        lo = pos.long()  # pos >= 0, so truncation is floor
        weights = torch.lerp(torch.take(table, lo), torch.take(table, lo + 1), pos - lo)
        idx = (base.long()[:, None] + span[None, :]).flatten()
        taps = padded.index_select(1, idx).view(x.shape[0], n.numel(), span.numel())
        out[:, start : start + n.numel()] = (taps * weights).sum(-1)
    return out


def audio_level_db(audio: Audio) -> float:
    """Peak level in dBFS (0 = full scale; ``-inf`` for digital silence)."""
    peak = float(audio.samples.abs().max()) if audio.num_samples else 0.0
    return 20.0 * math.log10(peak) if peak > 0 else -math.inf


def check_not_silent(
    audio: Audio | Iterable[Audio], threshold_db: float = -50.0, source: str = ""
) -> None:
    """Refuse a clip whose peak is below ``threshold_db`` (a silent clip gives a frozen face).

    ``audio`` may be a clip or its chunks (e.g. from :func:`stream_audio_file`): chunks are
    read only until one reaches the threshold, which for speech is within the first second.

    Raises:
        InputError: naming the level, the source and the ``--allow-silent`` escape hatch.
    """
    if isinstance(audio, Audio):
        level = audio_level_db(audio)
    else:
        level = -math.inf
        for chunk in audio:
            level = max(level, audio_level_db(chunk))
            if level >= threshold_db:
                break
        close = getattr(audio, "close", None)
        if close is not None:  # a generator: stop decoding and release its file
            close()
    if level < threshold_db:
        where = f" in {source}" if source else ""
        shown = "-inf" if level == -math.inf else f"{level:.1f}"
        raise InputError(
            f"audio is silent (peak {shown} dBFS){where}: give a clip with speech, "
            "or pass --allow-silent to render a still face"
        )


# --------------------------------------------------------------------------------- video in


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
    _check_file(path, "video")
    frames: list[np.ndarray] = []
    try:
        with av.open(str(path)) as container:
            if not container.streams.video:
                raise InputError(f"{path} has no video track: give a video file (mp4, mov, mkv)")
            stream = container.streams.video[0]
            stream.thread_type = "AUTO"
            fps = _frame_rate(stream)
            if fps is None:
                raise InputError(f"{path} does not declare a frame rate: re-encode it as mp4")
            has_audio = bool(container.streams.audio)
            for frame in container.decode(stream):
                if max_frames is not None and len(frames) >= max_frames:
                    break
                width, height = frame.width, frame.height
                if size is not None:
                    scale = size / min(width, height)
                    width = max(2, round(width * scale / 2) * 2)
                    height = max(2, round(height * scale / 2) * 2)
                frames.append(frame.to_ndarray(format="rgb24", width=width, height=height))
    except InputError:
        raise
    except _DECODE_ERRORS as exc:
        raise InputError(f"cannot read {path} as a video: {exc}; give an mp4, mov or mkv") from exc
    if not frames:
        raise InputError(f"{path} has no decodable video frames: give a non-empty video")
    audio = None
    if has_audio:
        audio = load_audio(path)
        if max_frames is not None:
            audio = audio.slice(0, math.ceil(len(frames) / fps * audio.sample_rate))
    return VideoClip(torch.from_numpy(np.stack(frames)), fps, audio)


def probe_media(path: str | Path) -> dict:
    """Describe a media file, like ffprobe.

    Returns:
        ``{"video": {"frames", "fps", "width", "height", "duration", "codec"} | None,
        "audio": {"duration", "sample_rate", "codec"} | None, "metadata": {...}}``;
        durations in seconds.
    """
    path = Path(path)
    _check_file(path, "media file")
    try:
        container = av.open(str(path))
    except _DECODE_ERRORS as exc:
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
                "duration": _declared_seconds(v) or total,
                "codec": v.codec_context.name,
            }
        if container.streams.audio:
            a = container.streams.audio[0]
            info["audio"] = {
                "duration": _declared_seconds(a) or total,
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


# --------------------------------------------------------------------------------- video out


@dataclass(frozen=True)
class WriteResult:
    """What :meth:`VideoWriter.close` wrote.

    Attributes:
        path: the output path (None when writing to a file object).
        frames: video frames in the file.
        video_duration: seconds of video (the last frame is shortened to end with the audio).
        audio_duration: seconds of audio (None without audio).
    """

    path: Path | None
    frames: int
    video_duration: float
    audio_duration: float | None


class VideoWriter:
    """Encode frames to an MP4 (H.264 yuv420p + AAC) as they arrive; memory stays bounded.

    With ``audio``, the video is trimmed to ``ceil(duration * fps)`` frames and its last frame
    is shortened so that video and audio end together; frames beyond that are dropped. If
    fewer frames arrive, the last one is held until the audio ends (with a warning). With
    ``audio_rate`` instead, the sound track arrives piece by piece through :meth:`write_audio`
    (live audio, or a file decoded as it streams), so it is never held whole; its end is
    known only at :meth:`close`, which holds the last frame up to it as above (frames beyond
    it are kept, with a warning).

    A path is written through a temporary file in the same directory, moved into place by
    :meth:`close`; on an exception inside ``with`` the partial file is removed and an earlier
    file at ``path`` stays as it was. A binary file object (``sys.stdout.buffer``, BytesIO)
    is written to directly: use ``fragmented=True`` for anything that cannot seek.

    Args:
        path: ``.mp4``/``.m4v``/``.mov`` path or a writable binary file object.
        fps: frame rate.
        size: ``(height, width)`` of the frames; both must be even (yuv420p halves chroma).
        audio: the sound track (mono ``[S]``), muxed as AAC at its own rate when AAC supports
            that rate, else at 48 kHz.
        audio_rate: instead of ``audio``: the sample rate of a sound track given in pieces
            with :meth:`write_audio`.
        metadata: extra container tags (e.g. ``pipeline``, ``config``). ``comment`` and
            ``generator`` always carry the provenance note; ``title`` defaults to it.
        crf: x264 constant rate factor (18 = visually lossless, 23 = x264's default).
        preset: x264 speed preset (``ultrafast`` .. ``veryslow``).
        fragmented: write a fragmented MP4 (``frag_keyframe+empty_moov+default_base_moof``,
            a keyframe every second) that players can read while it is being written.
    """

    def __init__(
        self,
        path: str | Path | BinaryIO,
        fps: float,
        size: tuple[int, int],
        *,
        audio: Audio | None = None,
        audio_rate: int | None = None,
        metadata: dict[str, str] | None = None,
        crf: int = 18,
        preset: str = "veryfast",
        fragmented: bool = False,
    ) -> None:
        height, width = int(size[0]), int(size[1])
        if height <= 0 or width <= 0 or height % 2 or width % 2:
            raise InputError(
                f"H.264 (yuv420p) needs an even frame width and height, got {width}x{height}: "
                "crop or pad the frames by one pixel"
            )
        if not (isinstance(fps, (int, float)) and math.isfinite(fps) and fps > 0):
            raise InputError(f"fps must be a positive number, got {fps!r}")
        if preset not in X264_PRESETS:
            raise ConfigError(
                f"unknown x264 preset {preset!r}: use one of {', '.join(X264_PRESETS)}"
            )
        if not (isinstance(crf, int) and 0 <= crf <= 51):
            raise ConfigError(f"crf must be an int in 0..51 (18 = visually lossless), got {crf!r}")
        if audio is not None and audio.samples.ndim != 1:
            raise InputError(f"the sound track must be mono [S], got {tuple(audio.samples.shape)}")
        if audio is not None and audio_rate is not None:
            raise InputError("give the sound track whole (audio=) or its rate for write_audio "
                             "(audio_rate=), not both")
        if audio_rate is not None and not (isinstance(audio_rate, int) and audio_rate > 0):
            raise InputError(f"audio_rate must be a positive int (Hz), got {audio_rate!r}")
        self.fps = float(fps)
        self.size = (height, width)
        self.audio = audio
        self.audio_rate = audio.sample_rate if audio is not None else audio_rate
        self._audio_live = audio_rate is not None  # the track comes through write_audio
        self._audio_parts: list[np.ndarray] = []  # received, not yet encoded (views, no copies)
        self._audio_received = 0
        self.frames_written = 0
        self.frames_dropped = 0
        self.result: WriteResult | None = None  # what close() returned (also after ``with``)
        self._closed = False
        self._last_frame: np.ndarray | None = None
        self._pending = None  # the newest video packet, held back to fix its duration at close
        self._max_frames = (
            None if audio is None else num_frames_for(audio.num_samples, audio.sample_rate, fps)
        )
        if isinstance(path, (str, Path)):
            self.path: Path | None = Path(path)
            if self.path.suffix.lower() not in (".mp4", ".m4v", ".mov"):
                raise InputError(f"cannot write {self.path}: name the output file .mp4")
            if self.path.is_dir():
                raise InputError(f"cannot write {self.path}: it is a directory, give a file name")
            self.path.parent.mkdir(parents=True, exist_ok=True)
            fd, tmp = tempfile.mkstemp(
                prefix=f".{self.path.stem}.", suffix=".partial.mp4", dir=self.path.parent
            )
            os.close(fd)
            self._tmp: Path | None = Path(tmp)
            target: str | BinaryIO = tmp
        else:
            seekable = getattr(path, "seekable", None)
            if not fragmented and not (seekable is not None and seekable()):
                raise InputError(
                    "a plain MP4 needs a seekable output (its index is written last): "
                    "pass fragmented=True to write to a pipe or stdout"
                )
            self.path, self._tmp, target = None, None, path
        movflags = "use_metadata_tags"  # without it MP4 drops every tag it has no atom for
        if fragmented:
            movflags += "+frag_keyframe+empty_moov+default_base_moof"
        elif self._tmp is not None:
            movflags += "+faststart"  # moov first: browsers can start playing before the end
        try:
            self._container = av.open(
                target, mode="w", format="mp4", options={"movflags": movflags}
            )
            self._container.metadata.update(_provenance(metadata))
            rate = Fraction(self.fps).limit_denominator(1001)
            self._video = self._container.add_stream("libx264", rate=rate)
            self._video.width, self._video.height = width, height
            self._video.pix_fmt = "yuv420p"
            # Convert and tag as BT.709 (limited range): untagged files are read as BT.601 by
            # some players and BT.709 by others, which shifts colours.
            context = self._video.codec_context
            context.colorspace = context.color_primaries = context.color_trc = 1  # BT.709
            context.color_range = 1  # limited ("tv") range
            self._video.options = {"crf": str(crf), "preset": preset}
            if fragmented:
                self._video.codec_context.gop_size = max(1, round(self.fps))
            self._audio_stream = None
            self._audio_sent = 0
            if self.audio_rate is not None:
                rate = self.audio_rate
                rate_out = rate if rate in _AAC_RATES else 48000
                self._audio_stream = self._container.add_stream("aac", rate=rate_out)
                self._audio_stream.layout = "mono"
                self._audio_stream.bit_rate = 96000
            if audio is not None:
                self._append_audio(audio.samples.detach().float().cpu().numpy())
            # Opens the encoders and writes the header now: bad options fail here, not midway,
            # and the muxer's time base (needed at close) is known.
            self._container.start_encoding()
        except BaseException:
            self._discard()
            raise

    def __enter__(self) -> VideoWriter:
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc_type is None:
            self.close()
        else:
            self._discard()

    def write(self, frames: Frames | torch.Tensor | np.ndarray) -> None:
        """Encode a chunk: ``[T, H, W, 3]`` (or one ``[H, W, 3]`` frame), uint8 or float 0..1."""
        if self._closed:
            raise RuntimeError("VideoWriter.write after close")
        data = _frames_to_uint8(frames)
        if tuple(data.shape[1:3]) != self.size:
            raise InputError(
                f"frames are {data.shape[2]}x{data.shape[1]} but the writer was opened for "
                f"{self.size[1]}x{self.size[0]}: give every chunk the same size"
            )
        if self._max_frames is not None:
            room = self._max_frames - self.frames_written
            self.frames_dropped += max(0, data.shape[0] - room)
            data = data[: max(0, room)]
        for frame in data:
            self._encode_frame(frame)

    def _encode_frame(self, frame: np.ndarray) -> None:
        video_frame = av.VideoFrame.from_ndarray(frame, format="rgb24").reformat(
            format="yuv420p", dst_colorspace="ITU709"
        )
        video_frame.pts = self.frames_written
        self._mux_video(self._video.encode(video_frame))
        self.frames_written += 1
        self._last_frame = frame
        # Feed the sound up to the current video time, so the two tracks interleave (a pipe
        # reader gets both as it goes, and the muxer never queues a whole track in memory).
        self._send_audio(self.frames_written / self.fps)

    def _mux_video(self, packets) -> None:
        for packet in packets:
            if self._pending is not None:
                self._container.mux(self._pending)
            self._pending = packet

    def write_audio(self, audio: Audio | np.ndarray | torch.Tensor) -> None:
        """Append the next piece of the sound track (mono ``[S]`` float in -1..1) to a writer
        opened with ``audio_rate``; it is encoded as the video reaches it."""
        if self._closed:
            raise RuntimeError("VideoWriter.write_audio after close")
        if not self._audio_live:
            raise InputError("write_audio needs a writer opened with audio_rate= "
                             "(this one has its whole sound track, or none)")
        if isinstance(audio, Audio):
            if audio.sample_rate != self.audio_rate:
                raise InputError(f"audio piece at {audio.sample_rate} Hz, but the writer was "
                                 f"opened for {self.audio_rate} Hz: resample it first")
            audio = audio.samples
        # A copy: the caller may reuse its buffer for the next piece (live capture does).
        data = np.array(torch.as_tensor(audio).detach().float().cpu().numpy(), copy=True)
        if data.ndim != 1:
            raise InputError(f"the sound track must be mono [S], got {tuple(data.shape)}")
        self._append_audio(data)

    def _append_audio(self, samples: np.ndarray) -> None:
        if samples.size:
            self._audio_parts.append(samples)
            self._audio_received += samples.size

    def _take_audio(self, count: int) -> np.ndarray:
        """The next ``count`` received samples, removed from the queue."""
        taken, need = [], count
        while need:
            part = self._audio_parts[0]
            taken.append(part[:need])
            if part.size > need:
                self._audio_parts[0] = part[need:]
                need = 0
            else:
                self._audio_parts.pop(0)
                need -= part.size
        return taken[0] if len(taken) == 1 else np.concatenate(taken)

    def _send_audio(self, until_seconds: float | None) -> None:
        if self._audio_stream is None:
            return
        stop = self._audio_received
        if until_seconds is not None:
            stop = min(stop, round(until_seconds * self.audio_rate))
        if stop > self._audio_sent:
            chunk = self._take_audio(stop - self._audio_sent)[None]
            frame = av.AudioFrame.from_ndarray(
                np.ascontiguousarray(chunk), format="flt", layout="mono"
            )
            frame.sample_rate = self.audio_rate
            frame.pts = self._audio_sent
            frame.time_base = Fraction(1, self.audio_rate)
            for packet in self._audio_stream.encode(frame):
                self._container.mux(packet)
            self._audio_sent = stop
        if until_seconds is None:
            for packet in self._audio_stream.encode(None):
                self._container.mux(packet)

    def close(self) -> WriteResult:
        """Flush the encoders, mux the rest of the audio, finish the file and move it in place."""
        if self._closed:
            raise RuntimeError("VideoWriter.close called twice")
        try:
            if self._audio_live and self._audio_received:
                # The end of a sound track given in pieces is known only now.
                self._max_frames = num_frames_for(self._audio_received, self.audio_rate, self.fps)
                extra = self.frames_written - self._max_frames
                if extra > 0:
                    warnings.warn(f"{extra} frame(s) beyond the end of the audio: the video "
                                  "runs on after its sound", stacklevel=2)
            if self._max_frames is not None and self.frames_written < self._max_frames:
                missing = self._max_frames - self.frames_written
                if self._last_frame is None:
                    raise InputError("no frames were written: write at least one before close()")
                warnings.warn(
                    f"{missing} frame(s) short of the audio: holding the last frame to the end",
                    stacklevel=2,
                )
                for _ in range(missing):
                    self._encode_frame(self._last_frame)
            if self.frames_written == 0:
                raise InputError("no frames were written: write at least one before close()")
            self._mux_video(self._video.encode(None))
            video_duration = self.frames_written / self.fps
            audio_duration = None
            if self._audio_received:
                audio_duration = self._audio_received / self.audio_rate
                if self.frames_written <= self._max_frames:  # else live frames ran past it
                    video_duration = audio_duration
            last = self._pending
            if last is not None:
                self._set_last_duration(last, video_duration)
                self._container.mux(last)
                self._pending = None
            self._send_audio(None)
            self._container.close()
            self._closed = True
            if self._tmp is not None:
                os.replace(self._tmp, self.path)
                self._tmp = None
        except BaseException:
            self._discard()
            raise
        self.result = WriteResult(self.path, self.frames_written, video_duration, audio_duration)
        return self.result

    def _set_last_duration(self, packet, end_seconds: float) -> None:
        """Make the track end at ``end_seconds`` by shortening the final packet.

        The MP4 track length is the sum of the sample durations; decode times are one frame
        apart, so the last packet in decode order starts ``frames - 1`` frames after the first
        and its duration is what is left up to the end (presentation order does not matter).
        """
        time_base = self._video.time_base  # the muxer's fine time base, set once it started
        scale = packet.time_base / time_base
        packet.pts = round(packet.pts * scale)
        packet.dts = round(packet.dts * scale)
        rest = Fraction(end_seconds).limit_denominator(1 << 24) - Fraction(
            self.frames_written - 1
        ) / Fraction(self.fps).limit_denominator(1001)
        packet.duration = max(1, round(rest / time_base))
        packet.time_base = time_base

    def _discard(self) -> None:
        """Abandon the output: close what is open and remove the partial file."""
        self._closed = True
        container = getattr(self, "_container", None)
        if container is not None:
            # The file is being thrown away: a trailer that fails to write does not matter.
            with contextlib.suppress(*_DECODE_ERRORS):
                container.close()
        tmp = getattr(self, "_tmp", None)
        if tmp is not None:
            tmp.unlink(missing_ok=True)
            self._tmp = None


def _provenance(extra: dict[str, str] | None) -> dict[str, str]:
    """Container tags: the caller's, plus the note that the video is synthetic."""
    from talkingface import __version__

    note = f"{PROVENANCE} made with talkingface {__version__}"
    tags = {"title": PROVENANCE}
    for key, value in (extra or {}).items():
        tags[str(key)] = value if isinstance(value, str) else json.dumps(value, sort_keys=True)
    tags["comment"] = note
    tags["generator"] = f"talkingface {__version__}"
    return tags


def _frames_to_uint8(frames: Frames | torch.Tensor | np.ndarray) -> np.ndarray:
    """``[T, H, W, 3]`` uint8 numpy (C-contiguous) from frames in any accepted form."""
    if isinstance(frames, Frames):
        data = frames.to_uint8()
    elif isinstance(frames, (torch.Tensor, np.ndarray)):
        data = torch.as_tensor(frames).detach()
        if data.ndim == 3:
            data = data[None]
        if data.ndim != 4 or data.shape[-1] != 3:
            raise InputError(f"frames must be [T, H, W, 3] RGB, got {tuple(data.shape)}")
        if data.is_floating_point():
            data = (data.float().clamp(0, 1) * 255 + 0.5).to(torch.uint8)
        elif data.dtype != torch.uint8:
            raise InputError(f"frames must be uint8 or float 0..1, got {data.dtype}")
    else:
        raise InputError(f"cannot write frames from a {type(frames).__name__}")
    return np.ascontiguousarray(data.cpu().numpy())


class PNGWriter:
    """Dump frames as numbered PNG files (``frame_000000.png``, ...) into ``directory``."""

    def __init__(
        self,
        directory: str | Path,
        *,
        start_index: int = 0,
        pattern: str = "frame_{:06d}.png",
    ) -> None:
        self.directory = Path(directory)
        if self.directory.exists() and not self.directory.is_dir():
            raise InputError(f"cannot write frames into {self.directory}: it is a file")
        self.directory.mkdir(parents=True, exist_ok=True)
        self.pattern = pattern
        self.index = start_index
        self.count = 0

    def __enter__(self) -> PNGWriter:
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        self.close()

    def write(self, frames: Frames | torch.Tensor | np.ndarray) -> None:
        """Save a chunk ``[T, H, W, 3]`` (or one ``[H, W, 3]`` frame) as the next files."""
        for frame in _frames_to_uint8(frames):
            # Level 1: frame dumps are for looking at, not archiving; speed matters more.
            PIL.Image.fromarray(frame).save(
                self.directory / self.pattern.format(self.index), compress_level=1
            )
            self.index += 1
            self.count += 1

    def close(self) -> int:
        """Number of files written."""
        return self.count


# --------------------------------------------------------------------------------- helpers


def _check_file(path: Path, what: str) -> None:
    if not path.exists():
        raise InputError(f"{what} not found: {path}; check the path")
    if path.is_dir():
        raise InputError(f"{path} is a directory: give the {what} inside it")
