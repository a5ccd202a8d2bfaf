"""Shared front end of the built-in audio encoders: analysis frames on an absolute sample grid,
power spectra, a mel filterbank (no torchaudio needed) and pooling onto video frames.

Analysis frame ``k`` is centred on stream sample ``k * HOP`` and spans ``WIN`` samples. Because
the grid is fixed to the stream (not to the chunk), a chunk and the whole clip produce the very
same analysis frames, which is what makes batch == streaming exact.
"""

from __future__ import annotations

import math

import torch

SAMPLE_RATE = 16000
HOP = 160
"""Samples between analysis frames (10 ms at 16 kHz)."""
WIN = 400
"""Samples per analysis frame (25 ms at 16 kHz)."""
N_FFT = 512
LEVEL_FLOOR_DB = -60.0
"""Default loudness (dB re full scale) that maps to speech level 0."""
LEVEL_RANGE_DB = 45.0
"""Default loudness span that maps to speech level 0..1."""
MAX_FPS = SAMPLE_RATE / HOP
"""Video frame rates above this would leave frames without an analysis frame."""


def analysis_range(first: int, stop: int, fps: float) -> tuple[int, int]:
    """Analysis frames ``[k0, k1)`` whose centres fall inside video frames ``[first, stop)``."""
    return _centre_index(first, fps), _centre_index(stop, fps)


def _centre_index(t: int, fps: float) -> int:
    # First analysis frame whose centre k*HOP is at or after the start of video frame t.
    start = math.floor(t * SAMPLE_RATE / fps + 1e-9)
    return -(-start // HOP)


def frames_at(
    samples: torch.Tensor, offset: int, k0: int, k1: int, width: int = WIN
) -> torch.Tensor:
    """Analysis frames ``k0 .. k1-1`` as ``[k1 - k0, width]``, centred on ``k * HOP``.

    Args:
        samples: ``[S]`` holding stream samples ``[offset, offset + S)``; samples outside
            it (before the stream's start, after its end) read as zeros.
        offset: stream index of ``samples[0]``.
        width: frame length in samples.
    """
    n = max(0, k1 - k0)
    lo = k0 * HOP - width // 2
    hi = (k1 - 1) * HOP - width // 2 + width if n else lo
    span = torch.zeros(max(0, hi - lo), dtype=torch.float32)
    src_lo, src_hi = max(lo, offset, 0), min(hi, offset + samples.shape[0])
    if src_hi > src_lo:
        span[src_lo - lo:src_hi - lo] = samples[src_lo - offset:src_hi - offset].float()
    if n == 0:
        return torch.zeros(0, width)
    return span.unfold(0, width, HOP)


def loudness_db(frames: torch.Tensor) -> torch.Tensor:
    """Power of frames ``[K, W]`` in dB re a full-scale square wave ``[K]``, floored at -100."""
    return 10 * torch.log10(frames.square().mean(1) + 1e-10)


def level(loudness: torch.Tensor, floor_db: float = LEVEL_FLOOR_DB,
          range_db: float = LEVEL_RANGE_DB) -> torch.Tensor:
    """Loudness in dB mapped to a 0..1 speech level (a fixed mapping, no clip normalisation)."""
    return ((loudness - floor_db) / range_db).clamp(0, 1)


_WINDOWS: dict[int, torch.Tensor] = {}


def hann(width: int = WIN) -> torch.Tensor:
    if width not in _WINDOWS:
        _WINDOWS[width] = torch.hann_window(width, periodic=False)
    return _WINDOWS[width]


def power_spectrum(frames: torch.Tensor) -> torch.Tensor:
    """Hann-windowed power spectra ``[K, N_FFT // 2 + 1]`` of frames ``[K, WIN]``."""
    spec = torch.fft.rfft(frames * hann(frames.shape[1]), n=N_FFT)
    return spec.real.square() + spec.imag.square()


def mel_filterbank(n_mels: int, fmin: float = 60.0, fmax: float = 7600.0) -> torch.Tensor:
    """Triangular filters on the HTK mel scale, ``[N_FFT // 2 + 1, n_mels]``, unit peak."""

    def to_mel(f):
        return 2595.0 * math.log10(1.0 + f / 700.0)

    edges_mel = torch.linspace(to_mel(fmin), to_mel(fmax), n_mels + 2, dtype=torch.float64)
    edges_hz = 700.0 * (10.0 ** (edges_mel / 2595.0) - 1.0)
    bins_hz = torch.arange(N_FFT // 2 + 1, dtype=torch.float64) * SAMPLE_RATE / N_FFT
    lower, centre, upper = edges_hz[:-2], edges_hz[1:-1], edges_hz[2:]
    rising = (bins_hz[:, None] - lower) / (centre - lower)
    falling = (upper - bins_hz[:, None]) / (upper - centre)
    return torch.clamp(torch.minimum(rising, falling), min=0.0).float()


def log_mel(power: torch.Tensor, filters: torch.Tensor) -> torch.Tensor:
    """Log10 mel energies ``[K, n_mels]`` with a fixed floor (-10 = 100 dB below full scale)."""
    return torch.log10(power @ filters / (WIN * WIN / 4) + 1e-10)


def pool_to_video(values: torch.Tensor, k0: int, first: int, stop: int, fps: float) -> torch.Tensor:
    """Average analysis-frame rows ``[K, D]`` (frames ``k0 ..``) over each video frame.

    Video frame ``t`` gets the mean of the analysis frames centred inside it: ``[stop-first, D]``.
    """
    t = torch.arange(first, stop + 1, dtype=torch.float64)
    starts = torch.floor(t * SAMPLE_RATE / fps + 1e-9).long()
    idx = torch.div(starts + HOP - 1, HOP, rounding_mode="floor") - k0
    sums = torch.zeros(values.shape[0] + 1, values.shape[1], dtype=torch.float64)
    sums[1:] = torch.cumsum(values.double(), dim=0)
    counts = (idx[1:] - idx[:-1]).clamp(min=1).double()[:, None]
    return ((sums[idx[1:]] - sums[idx[:-1]]) / counts).float()
