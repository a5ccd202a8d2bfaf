"""Lag-free smoothing of per-frame motion tracks: a zero-phase Gaussian for whole files and a
One-Euro filter for streams, both aware of frames where no face was found.

    from talkingface.face.smoothing import SmoothingConfig, smooth_track
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from talkingface.pipeline.errors import ConfigError

# -3 dB point of a Gaussian of width sigma (seconds): |H(f)| = exp(-2 pi^2 sigma^2 f^2) = 1/sqrt2.
_GAUSS_3DB = math.sqrt(math.log(2) / 2) / (math.pi * math.sqrt(2))


@dataclass(frozen=True)
class SmoothingConfig:
    """How a motion track is smoothed.

    Attributes:
        method: ``"zero_phase"`` (a Gaussian applied forwards and backwards at once: no lag,
            needs the whole track, for files), ``"one_euro"`` (causal, adaptive: little lag on
            fast moves, strong smoothing when still, for streams) or ``"none"``.
        pose_hz: zero-phase -3 dB cutoff for the head pose, in Hz.
        expression_hz: zero-phase cutoff for the expression coefficients, in Hz.
        fast_hz: zero-phase cutoff for the fast ones (blinks, jaw, lip press), in Hz: a blink
            lasts 100-300 ms and must keep its depth.
        min_cutoff_hz: One-Euro cutoff when the signal is still, in Hz.
        beta: One-Euro speed coefficient: how much the cutoff rises with the signal's speed
            (per unit of the signal per second).
        derivative_hz: One-Euro cutoff of the speed estimate, in Hz.
    """

    method: str = "zero_phase"
    pose_hz: float = 4.0
    expression_hz: float = 6.0
    fast_hz: float = 10.0
    min_cutoff_hz: float = 1.5
    beta: float = 0.5
    derivative_hz: float = 1.0

    def __post_init__(self) -> None:
        if self.method not in SMOOTHING_METHODS:
            raise ConfigError(
                f"smoothing method must be one of {', '.join(SMOOTHING_METHODS)}, "
                f"got {self.method!r}"
            )
        for name in ("pose_hz", "expression_hz", "fast_hz", "min_cutoff_hz", "derivative_hz"):
            value = getattr(self, name)
            if not isinstance(value, (int, float)) or not value > 0:
                raise ConfigError(f"smoothing {name} must be a positive number, got {value!r}")
        if not isinstance(self.beta, (int, float)) or self.beta < 0:
            raise ConfigError(f"smoothing beta must be 0 or more, got {self.beta!r}")


SMOOTHING_METHODS = ("zero_phase", "one_euro", "none")
SMOOTHING_PRESETS: dict[str, SmoothingConfig] = {
    "default": SmoothingConfig(),
    "zero_phase": SmoothingConfig(),
    "stream": SmoothingConfig(method="one_euro"),
    "one_euro": SmoothingConfig(method="one_euro"),
    "none": SmoothingConfig(method="none"),
}
"""Named smoothing settings: ``default``/``zero_phase`` for files, ``stream``/``one_euro`` for
live input, ``none``."""


def smoothing_config(smoothing: SmoothingConfig | str | None) -> SmoothingConfig:
    """A :class:`SmoothingConfig` from a config, a preset name or None (no smoothing)."""
    if smoothing is None:
        return SMOOTHING_PRESETS["none"]
    if isinstance(smoothing, SmoothingConfig):
        return smoothing
    if isinstance(smoothing, str) and smoothing in SMOOTHING_PRESETS:
        return SMOOTHING_PRESETS[smoothing]
    raise ConfigError(
        f"smoothing must be a SmoothingConfig or one of {', '.join(SMOOTHING_PRESETS)}, "
        f"got {smoothing!r}"
    )


def gaussian_zero_phase(
    values: np.ndarray, valid: np.ndarray, fps: float, cutoff_hz: np.ndarray | float
) -> np.ndarray:
    """Zero-phase Gaussian smoothing of ``values [T, D]`` over the rows where ``valid [T]``.

    Each column ``d`` uses the Gaussian whose -3 dB cutoff is ``cutoff_hz[d]``; invalid rows
    neither contribute nor change (they keep their value, NaN included). The weights are
    renormalised over the valid rows, so the ends and the edges of gaps are not pulled
    towards zero.
    """
    values = np.asarray(values, dtype=np.float64)
    out = values.copy()
    t, d = values.shape
    cutoff = np.broadcast_to(np.asarray(cutoff_hz, dtype=np.float64), (d,))
    filled = np.where(valid[:, None], values, 0.0)
    weight = valid.astype(np.float64)
    for column in range(d):
        sigma = _GAUSS_3DB / cutoff[column] * fps  # in frames
        if sigma < 0.3 or t < 2:
            continue
        radius = max(1, math.ceil(3 * sigma))
        taps = np.exp(-0.5 * (np.arange(-radius, radius + 1) / sigma) ** 2)
        # Full convolutions cut to the centre ("same" mode would not cut taps longer than the
        # track).
        num = np.convolve(filled[:, column], taps)[radius : radius + t]
        den = np.convolve(weight, taps)[radius : radius + t]
        smooth = num / np.maximum(den, 1e-12)
        out[:, column] = np.where(valid, smooth, values[:, column])
    return out


class OneEuroFilter:
    """The One-Euro filter (Casiez et al., CHI 2012) over vectors, frame by frame.

    An exponential smoother whose cutoff rises with the signal's speed: still signals are
    smoothed hard, fast ones follow with little lag. Causal, so it suits live streams.

    Args:
        fps: frames per second.
        min_cutoff_hz, beta, derivative_hz: as in :class:`SmoothingConfig`.
    """

    def __init__(self, fps: float, min_cutoff_hz: float, beta: float, derivative_hz: float):
        self.fps, self.min_cutoff, self.beta = fps, min_cutoff_hz, beta
        self.d_cutoff = derivative_hz
        self.value: np.ndarray | None = None
        self.speed: np.ndarray | None = None

    def _alpha(self, cutoff: np.ndarray | float) -> np.ndarray | float:
        tau = 1.0 / (2 * math.pi * cutoff)
        return 1.0 / (1.0 + tau * self.fps)

    def reset(self) -> None:
        """Forget the past (after a gap in the track)."""
        self.value = self.speed = None

    def __call__(self, x: np.ndarray) -> np.ndarray:
        """The filtered value of the next frame ``x [D]``."""
        x = np.asarray(x, dtype=np.float64)
        if self.value is None:
            self.value, self.speed = x.copy(), np.zeros_like(x)
            return x.copy()
        speed = (x - self.value) * self.fps
        self.speed = self.speed + self._alpha(self.d_cutoff) * (speed - self.speed)
        cutoff = self.min_cutoff + self.beta * np.abs(self.speed)
        self.value = self.value + self._alpha(cutoff) * (x - self.value)
        return self.value.copy()


def one_euro(
    values: np.ndarray, valid: np.ndarray, fps: float, config: SmoothingConfig
) -> np.ndarray:
    """:class:`OneEuroFilter` over ``values [T, D]``, restarted after every run of invalid rows
    (which keep their value)."""
    values = np.asarray(values, dtype=np.float64)
    out = values.copy()
    filt = OneEuroFilter(fps, config.min_cutoff_hz, config.beta, config.derivative_hz)
    for i in range(len(values)):
        if valid[i]:
            out[i] = filt(values[i])
        else:
            filt.reset()
    return out


def smooth_track(
    values: np.ndarray,
    valid: np.ndarray,
    fps: float,
    config: SmoothingConfig,
    cutoff_hz: np.ndarray | float,
) -> np.ndarray:
    """``values [T, D]`` smoothed by ``config`` (``cutoff_hz`` per column for zero-phase)."""
    if config.method == "zero_phase":
        return gaussian_zero_phase(values, valid, fps, cutoff_hz)
    if config.method == "one_euro":
        return one_euro(values, valid, fps, config)
    return np.asarray(values, dtype=np.float64).copy()
