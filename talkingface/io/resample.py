"""Band-limited resampling (Kaiser-windowed sinc, polyphase)."""

from __future__ import annotations

import functools
import math

import torch


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
