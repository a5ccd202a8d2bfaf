"""Smoothing of motion tracks: the zero-phase filter adds no lag and respects gaps, the One-Euro
filter is causal and follows fast moves, and bad settings are refused."""

from __future__ import annotations

import numpy as np
import pytest

from talkingface.face.smoothing import (
    SMOOTHING_PRESETS,
    SmoothingConfig,
    gaussian_zero_phase,
    one_euro,
    smooth_track,
    smoothing_config,
)
from talkingface.pipeline.errors import ConfigError

FPS = 25.0


def _noisy_sine(frames: int = 200, hz: float = 0.5, noise: float = 0.1) -> tuple:
    t = np.arange(frames) / FPS
    clean = np.sin(2 * np.pi * hz * t)[:, None]
    rng = np.random.default_rng(0)
    return clean, clean + noise * rng.standard_normal(clean.shape)


def test_zero_phase_removes_jitter_without_lag():
    clean, noisy = _noisy_sine()
    valid = np.ones(len(clean), dtype=bool)
    smooth = gaussian_zero_phase(noisy, valid, FPS, 2.0)
    inner = slice(10, -10)  # at the very ends the one-sided window flattens a slope a little
    assert np.abs(smooth - clean)[inner].mean() < 0.6 * np.abs(noisy - clean)[inner].mean()
    # No lag: the best alignment with the clean signal is at shift 0.
    errors = [np.abs(np.roll(smooth[:, 0], s)[20:-20] - clean[20:-20, 0]).mean() for s in
              range(-3, 4)]
    assert int(np.argmin(errors)) == 3


def test_zero_phase_keeps_gaps_and_ends():
    values = np.ones((30, 2))
    values[10:15] = np.nan
    valid = ~np.isnan(values[:, 0])
    smooth = gaussian_zero_phase(values, valid, FPS, 2.0)
    assert np.isnan(smooth[10:15]).all()  # invalid rows keep their value
    np.testing.assert_allclose(smooth[valid], 1.0)  # ends and gap edges are not pulled to 0


def test_zero_phase_on_a_track_shorter_than_the_filter():
    values = np.arange(4.0)[:, None]
    smooth = gaussian_zero_phase(values, np.ones(4, dtype=bool), FPS, 0.5)
    assert smooth.shape == (4, 1) and np.isfinite(smooth).all()


def test_one_euro_is_causal_and_restarts_after_gaps():
    _, noisy = _noisy_sine()
    valid = np.ones(len(noisy), dtype=bool)
    config = SmoothingConfig(method="one_euro")
    full = one_euro(noisy, valid, FPS, config)
    head = one_euro(noisy[:50], valid[:50], FPS, config)
    np.testing.assert_array_equal(full[:50], head)  # the past only
    assert np.abs(np.diff(full[:, 0])).mean() < np.abs(np.diff(noisy[:, 0])).mean()
    valid[60:63] = False
    gapped = one_euro(noisy, valid, FPS, config)
    assert gapped[63, 0] == noisy[63, 0]  # a fresh start after the gap


def test_presets_and_bad_settings():
    assert smoothing_config("default").method == "zero_phase"
    assert smoothing_config("stream").method == "one_euro"
    assert smoothing_config(None).method == "none"
    assert set(SMOOTHING_PRESETS) >= {"default", "stream", "none"}
    values = np.random.default_rng(1).standard_normal((10, 3))
    out = smooth_track(values, np.ones(10, dtype=bool), FPS, smoothing_config("none"), 1.0)
    np.testing.assert_array_equal(out, values)
    with pytest.raises(ConfigError, match="method"):
        SmoothingConfig(method="kalman")
    with pytest.raises(ConfigError, match="pose_hz"):
        SmoothingConfig(pose_hz=0)
    with pytest.raises(ConfigError, match="beta"):
        SmoothingConfig(beta=-1)
    with pytest.raises(ConfigError, match="smoothing"):
        smoothing_config("wobbly")
