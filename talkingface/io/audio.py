"""Speech loading: audio files (decoded whole or incrementally) and arrays -> mono ``Audio`` at
the encoder's rate; loudness checks."""

from __future__ import annotations

import math
from collections.abc import Iterable, Iterator
from pathlib import Path

import av
import numpy as np
import torch

from talkingface.io._common import DECODE_ERRORS, check_file, declared_seconds
from talkingface.io.resample import resample
from talkingface.pipeline.contracts import Audio
from talkingface.pipeline.errors import InputError

MIN_AUDIO_SECONDS = 0.05
"""Shortest accepted speech clip: less than one video frame at 20 fps is no clip at all."""

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
    check_file(path, "audio file")
    try:
        container = av.open(str(path))
    except DECODE_ERRORS as exc:
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
        declared = declared_seconds(stream)  # read at the end: some demuxers update it
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
    except DECODE_ERRORS as exc:
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
