"""Band-limited resampling (Kaiser-windowed sinc, polyphase), of a whole clip or as a stream."""

from __future__ import annotations

import functools
import math
from collections.abc import Iterable, Iterator
from dataclasses import dataclass

import torch

from talkingface.pipeline.contracts import Audio
from talkingface.pipeline.errors import InputError


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

    Samples before the first and after the last are taken as zeros. :class:`StreamResampler`
    gives the same samples from the clip in pieces.

    Args:
        samples: float ``[..., S]`` (any leading dims; any device).
        orig_rate, new_rate: sample rates in Hz.
        zero_crossings: sinc zero crossings on each side of a tap centre (filter length).
        rolloff: passband edge as a fraction of the lower Nyquist frequency.
        beta: Kaiser window shape (12 keeps the stopband below -100 dB).

    Returns:
        ``[..., ceil(S * new_rate / orig_rate)]`` float32, sample ``n`` at time ``n / new_rate``.
    """
    x = samples.float()
    plan = _Plan.make(orig_rate, new_rate, zero_crossings, rolloff, beta)
    if plan is None:
        return x.clone()
    n_in = x.shape[-1]
    n_out = plan.num_outputs(n_in)
    lead = x.shape[:-1]
    y = plan.outputs(x.reshape(-1, n_in), 0, 0, n_out)
    return y.reshape(*lead, n_out)


@dataclass(frozen=True)
class _Plan:
    """How to compute the output samples of one rate conversion.

    Output ``n`` sits at input time ``n * down / up``. The polyphase path takes outputs in
    blocks of ``up`` (``up`` phase filters sliding in strides of ``down`` input samples); the
    direct path, for rate pairs with too many phases, reads each output's taps from a finely
    sampled kernel table. Both read a limited span of input around each output instant
    (:meth:`input_span`), so a clip can be converted whole or piece by piece.
    """

    up: int
    down: int
    cutoff: float  # filter cutoff in cycles per input sample
    half: float  # filter half-width in input samples
    width: int  # ceil(half)
    beta: float
    direct: bool

    @staticmethod
    def make(orig_rate, new_rate, zero_crossings, rolloff, beta) -> _Plan | None:
        """The plan for ``orig_rate -> new_rate`` (None when the rates are equal)."""
        if orig_rate <= 0 or new_rate <= 0:
            raise ValueError(f"sample rates must be positive, got {orig_rate} -> {new_rate}")
        if orig_rate == new_rate:
            return None
        g = math.gcd(orig_rate, new_rate)
        up, down = new_rate // g, orig_rate // g
        cutoff = rolloff * 0.5 * min(1.0, up / down)
        half = zero_crossings / (2.0 * cutoff)
        width = math.ceil(half)
        if up * (down + 2 * width + 1) > 1 << 22:
            return _Plan(up, down, cutoff, half, width, beta, direct=True)
        # conv1d is slow with few output channels: take several blocks per stride instead.
        blocks = max(1, 32 // up)
        return _Plan(up * blocks, down * blocks, cutoff, half, width, beta, direct=False)

    def num_outputs(self, n_in: int) -> int:
        """Output samples of a clip of ``n_in`` input samples."""
        return -(-n_in * self.up // self.down)

    def input_span(self, n0: int, n1: int) -> tuple[int, int]:
        """Input samples ``[lo, hi)`` that outputs ``[n0, n1)`` (``n1 > n0``) read."""
        if self.direct:
            # Output n reads input floor(t) - width + i, i = 0 .. 2 * width + 1.
            return n0 * self.down // self.up - self.width, (
                (n1 - 1) * self.down // self.up + self.width + 2
            )
        # Block k reads input k * down - width + i, i = 0 .. down + 2 * width.
        k0, k1 = n0 // self.up, -(-n1 // self.up)
        return k0 * self.down - self.width, k1 * self.down + self.width + 1

    def ready(self, n_in: int) -> int:
        """How many outputs read no input beyond the first ``n_in`` samples."""
        if self.direct:  # largest n1 with input_span(n0, n1)[1] <= n_in
            return max(0, -(-(n_in - self.width - 1) * self.up // self.down))
        return max(0, (n_in - self.width - 1) // self.down) * self.up

    def outputs(self, x: torch.Tensor, x_start: int, n0: int, n1: int) -> torch.Tensor:
        """Outputs ``[n0, n1)`` as float32 ``[B, n1 - n0]``.

        ``x``: float32 ``[B, L]``, input samples ``[x_start, x_start + L)``; it must hold every
        real input sample of :meth:`input_span`, the rest of the span is taken as zeros.
        """
        if n1 <= n0:
            return x.new_zeros(x.shape[0], 0)
        lo, hi = self.input_span(n0, n1)
        keep = x[:, max(0, lo - x_start) : max(0, hi - x_start)]
        left = max(0, x_start - lo)
        window = torch.nn.functional.pad(keep, (left, hi - lo - left - keep.shape[1]))
        if self.direct:
            return self._direct(window, n0, n1)
        return self._polyphase(window, n0, n1)

    def _polyphase(self, window: torch.Tensor, n0: int, n1: int) -> torch.Tensor:
        """One conv1d over the window of whole blocks ``n0 // up ..``."""
        kernel = _polyphase_kernel(
            self.up, self.down, self.cutoff, self.half, self.width, self.beta
        ).to(window.device)
        y = torch.nn.functional.conv1d(window[:, None, :], kernel[:, None, :], stride=self.down)
        skip = n0 % self.up
        return y.transpose(1, 2).reshape(window.shape[0], -1)[:, skip : skip + n1 - n0]

    def _direct(self, window: torch.Tensor, n0: int, n1: int) -> torch.Tensor:
        """Taps read from the kernel table with linear interpolation, 16384 outputs at a time."""
        table = _kernel_table(self.width, self.cutoff, self.half, self.beta).to(window.device)
        out = torch.empty(window.shape[0], n1 - n0, device=window.device)
        span = torch.arange(2 * self.width + 2, device=window.device)
        first = n0 * self.down // self.up  # window index 0 is input first - width
        for start in range(n0, n1, 16384):
            n = torch.arange(start, min(n1, start + 16384), dtype=torch.int64,
                             device=window.device)
            base = n * self.down // self.up
            frac = ((n * self.down - base * self.up).double() / self.up).float()
            # Table position of tap i for output n: (i - width - (t - floor t)) samples.
            pos = (span[None, :] + 2 - frac[:, None]) * _TABLE_STEPS
            lo = pos.long()  # pos >= 0, so truncation is floor
            weights = torch.lerp(torch.take(table, lo), torch.take(table, lo + 1), pos - lo)
            idx = ((base - first)[:, None] + span[None, :]).flatten()
            taps = window.index_select(1, idx).view(window.shape[0], n.numel(), span.numel())
            out[:, start - n0 : start - n0 + n.numel()] = (taps * weights).sum(-1)
        return out


class StreamResampler:
    """:func:`resample` of a clip that arrives in pieces: the same samples, as they become
    computable, with bounded memory.

    Only the input that later outputs read is kept (about ``2 * zero_crossings`` periods of
    the lower rate, plus one polyphase block), however long the stream. Concatenating every
    :meth:`push` result and :meth:`flush` gives ``resample(whole_clip, orig_rate, new_rate)``
    (to float rounding), for any split of the clip, empty and one-sample pieces included.

    Args:
        orig_rate, new_rate: sample rates in Hz; the filter options are those of
            :func:`resample`.
    """

    def __init__(
        self,
        orig_rate: int,
        new_rate: int,
        *,
        zero_crossings: int = 24,
        rolloff: float = 0.945,
        beta: float = 12.0,
    ) -> None:
        self._plan = _Plan.make(orig_rate, new_rate, zero_crossings, rolloff, beta)
        self._buffer = torch.zeros(1, 0)  # input samples [_start, _received)
        self._start = 0
        self._received = 0
        self._emitted = 0  # outputs returned so far
        self._flushed = False

    def push(self, samples: torch.Tensor) -> torch.Tensor:
        """Take the next input samples (float ``[S]``, ``S >= 0``); return the output samples
        float32 ``[N]`` that they complete (often none for short pieces)."""
        if self._flushed:
            raise RuntimeError("StreamResampler.push after flush")
        x = samples.detach().float()
        if x.ndim != 1:
            raise InputError(f"StreamResampler takes mono samples [S], got {tuple(x.shape)}")
        if self._plan is None:
            self._received += x.numel()
            return x.clone()
        self._buffer = torch.cat([self._buffer.to(x.device), x[None]], dim=1)
        self._received += x.numel()
        return self._emit(self._plan.ready(self._received))

    def flush(self) -> torch.Tensor:
        """End of the stream: the remaining output samples, float32 ``[N]`` (the input after
        the last sample taken as zeros, as :func:`resample` does)."""
        if self._flushed:
            raise RuntimeError("StreamResampler.flush called twice")
        self._flushed = True
        if self._plan is None:
            return torch.zeros(0)
        out = self._emit(self._plan.num_outputs(self._received))
        self._buffer = self._buffer[:, :0]
        return out

    def _emit(self, n1: int) -> torch.Tensor:
        """Outputs ``[emitted, n1)``, then drop the input no later output reads."""
        plan, n0 = self._plan, self._emitted
        if n1 <= n0:
            return self._buffer.new_zeros(0)
        y = plan.outputs(self._buffer, self._start, n0, n1)[0]
        self._emitted = n1
        drop = plan.input_span(n1, n1 + 1)[0] - self._start
        if drop > 0:
            self._buffer = self._buffer[:, drop:].clone()  # a copy frees the dropped samples
            self._start += drop
        return y


def resample_chunks(chunks: Iterable[Audio], rate: int) -> Iterator[Audio]:
    """Consecutive mono ``Audio`` chunks at one rate -> consecutive chunks at ``rate``.

    Converted as one stream (:class:`StreamResampler`): the samples are those of
    ``load_audio(whole_clip, target_rate=rate)`` (resampled, clamped to -1..1), however the
    clip is cut, and any chunk may be short (a 20 ms microphone buffer, a single sample).
    Output offsets count from 0 in the output stream; output chunks are cut where samples
    become computable, and the last comes once the input ends. Chunks already at ``rate``
    pass through untouched.

    Raises:
        InputError: a chunk that is not mono ``Audio``, or one at another rate than the first.
    """
    resampler = None
    first_rate = None
    emitted = 0
    for chunk in chunks:
        if not isinstance(chunk, Audio):
            raise InputError(
                f"audio chunks must be talkingface Audio objects, got {type(chunk).__name__}: "
                "wrap the samples as Audio(samples, sample_rate)"
            )
        if chunk.samples.ndim != 1:
            raise InputError(
                f"audio chunks must be mono [S], got {tuple(chunk.samples.shape)}: "
                "average the channels first"
            )
        if first_rate is None:
            first_rate = chunk.sample_rate
            if first_rate != rate:
                resampler = StreamResampler(first_rate, rate)
        elif chunk.sample_rate != first_rate:
            raise InputError(
                f"audio chunk at {chunk.sample_rate} Hz in a stream that started at "
                f"{first_rate} Hz: give every chunk of a stream the same sample rate"
            )
        if resampler is None:
            yield chunk
            continue
        out = resampler.push(chunk.samples)
        if out.numel():
            yield Audio(out.clamp_(-1.0, 1.0), rate, emitted)
            emitted += out.numel()
    if resampler is not None:
        out = resampler.flush()
        if out.numel():
            yield Audio(out.clamp_(-1.0, 1.0), rate, emitted)


# Kernel table steps per input sample on the direct path (linear interpolation between them).
_TABLE_STEPS = 512


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


@functools.lru_cache(maxsize=8)
def _kernel_table(width, cutoff, half, beta) -> torch.Tensor:
    """float32 ``[2 * (width + 2) * _TABLE_STEPS + 1]``: the kernel every ``1 / _TABLE_STEPS``
    input samples from ``-(width + 2)`` to ``width + 2`` (cached, like the polyphase filters)."""
    grid = torch.arange(-(width + 2) * _TABLE_STEPS, (width + 2) * _TABLE_STEPS + 1)
    return _sinc_kernel(grid.double() / _TABLE_STEPS, cutoff, half, beta).float()
