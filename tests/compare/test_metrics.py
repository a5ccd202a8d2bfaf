"""Metric functions on synthetic signals whose answers are known."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from talkingface.compare import metrics as M


def _speechlike(n: int = 200, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    x = rng.standard_normal(n + 8)
    return np.convolve(x, np.ones(5) / 5, mode="same")[4 : 4 + n]


@pytest.mark.parametrize("lag", [-3, -1, 0, 2, 3])
def test_best_lag_correlation_finds_known_lag(lag):
    ref = _speechlike()
    test = np.roll(ref, lag)
    r, found = M.best_lag_correlation(ref, test, max_lag=3)
    assert found == lag
    assert r > 0.99


def test_best_lag_correlation_punishes_large_shift():
    ref = _speechlike(400)
    r_shifted, _ = M.best_lag_correlation(ref, np.roll(ref, 10), max_lag=3)
    assert r_shifted < 0.5


def test_best_lag_correlation_constant_is_nan():
    r, lag = M.best_lag_correlation(_speechlike(), np.full(200, 0.3))
    assert math.isnan(r) and lag == 0


def test_still_test_signal_scores_zero():
    ref = _speechlike()
    noise = 1e-4 * _speechlike(seed=1) + 0.2  # a still mouth: landmark noise only
    r, _ = M.best_lag_correlation(ref, ref + noise, min_std=0.003)
    assert r > 0.99
    assert M.best_lag_correlation(ref, noise, min_std=0.003) == (0.0, 0)


def test_nan_frames_are_skipped():
    ref = _speechlike()
    test = ref.copy()
    test[::7] = np.nan
    r, lag = M.best_lag_correlation(ref, test)
    assert lag == 0 and r == pytest.approx(1.0)


def test_av_offset_in_frames_and_ms():
    energy = _speechlike(300)
    mouth = np.roll(energy, 4)
    lag, ms, r = M.av_offset(energy, mouth, fps=25.0, max_lag=10)
    assert lag == 4 and ms == pytest.approx(160.0) and r > 0.99


def test_frame_energy_and_silences():
    sr, fps = 16000, 25.0
    t = np.arange(sr * 2) / sr
    x = 0.5 * np.sin(2 * np.pi * 220 * t)
    x[int(0.5 * sr) : int(1.0 * sr)] = 0.0  # 500 ms pause
    x[int(1.5 * sr) : int(1.6 * sr)] = 0.0  # 100 ms pause: too short to count
    e = M.frame_energy_db(x, sr, fps)
    assert e.shape == (50,)
    assert e[0] == pytest.approx(20 * np.log10(0.5 / np.sqrt(2)), abs=0.1)
    # frame 12 (0.48-0.52 s) is half speech, so the silence starts at frame 13
    assert M.silences(e, fps, min_ms=300) == [(13, 25)]


def test_silent_lip_stability_constant_mouth_is_zero():
    std, move = M.silent_lip_stability(np.full(100, 0.2), [(10, 40), (60, 90)])
    assert std == pytest.approx(0.0, abs=1e-12) and move == 0.0


def test_silent_lip_stability_moving_mouth():
    mouth = np.zeros(100)
    mouth[10:40:2] = 0.1  # alternating 0 / 0.1 inside the silence
    std, move = M.silent_lip_stability(mouth, [(10, 40)])
    assert std == pytest.approx(0.05) and move == pytest.approx(0.1)
    assert all(math.isnan(v) for v in M.silent_lip_stability(mouth, []))


def test_delta_p_of_known_sinusoid():
    # yaw = A sin(2 pi f t): mean |dyaw| per frame -> 4 A f / fps for a whole number of periods.
    fps, f, amp = 25.0, 0.5, math.radians(10.0)
    t = np.arange(int(fps * 20) + 1) / fps
    pose = np.zeros((len(t), 6))
    pose[:, 0] = amp * np.sin(2 * np.pi * f * t)
    expected = 4 * 10.0 * f / fps / 3  # degrees, averaged with the still pitch and roll
    assert M.delta_p(pose) == pytest.approx(expected, rel=0.01)
    assert M.delta_p(torch.zeros(10, 3)) == 0.0


def test_jitter():
    assert M.jitter(np.arange(20.0)) == 0.0  # constant velocity: no jitter
    zigzag = np.array([0.0, 1.0] * 10)
    assert M.jitter(zigzag) == pytest.approx(2.0)


def test_blinks_known_count():
    fps = 25.0
    eye = np.full((fps * 60).__int__(), 0.3)
    starts = [100, 500, 900, 1300]
    for s in starts:
        eye[s : s + 5] = 0.05  # 200 ms closed
    eye[700] = 0.2  # a dip above the closing threshold is no blink
    stats = M.blinks(np.stack([eye, eye], axis=1), fps)
    assert stats.count == 4
    assert stats.per_minute == pytest.approx(4.0)
    assert stats.mean_duration_ms == pytest.approx(200.0)


def test_blinks_hysteresis_merges_noisy_reopen():
    eye = np.full(100, 1.0)
    eye[40:50] = [0.1, 0.1, 0.6, 0.1, 0.1, 0.1, 0.6, 0.1, 0.1, 0.1]  # never above 0.75
    assert M.blinks(eye, 25.0).count == 1


def test_psnr_known_value():
    a = np.full((32, 32, 3), 100, dtype=np.uint8)
    b = a + 10
    assert M.psnr(a, b) == pytest.approx(10 * math.log10(255**2 / 100))
    assert M.psnr(a, a) == math.inf
    mask = np.zeros((32, 32), dtype=bool)
    mask[:, :16] = True
    c = a.copy()
    c[:, 16:] = 0  # differences only outside the mask
    assert M.psnr(a, c, mask) == math.inf


def test_ssim():
    rng = np.random.default_rng(0)
    a = rng.integers(0, 256, (48, 48, 3), dtype=np.uint8)
    assert M.ssim(a, a) == pytest.approx(1.0)
    noisy = np.clip(a + rng.normal(0, 40, a.shape), 0, 255).astype(np.uint8)
    assert 0.0 < M.ssim(a, noisy) < 0.9
    with pytest.raises(ValueError, match="shape"):
        M.ssim(a, a[:10])


def test_boxes():
    m = M.box_mask((10, 20), (5, 2, 10, 4))
    assert m.sum() == 10 and m[2, 5] and not m[4, 5]
    assert M.head_box((40, 40, 60, 60), (100, 100), scale=2.0) == (30.0, 28.0, 70.0, 68.0)


def test_is_bilabial():
    assert all(M.is_bilabial(x) for x in ("P", "b", "M", "EM", "ˈm", "pʰ", "bʲ"))
    assert not any(M.is_bilabial(x) for x in ("AA1", "f", "mb", "sil", ""))


def test_bilabial_closure_rate():
    fps = 25.0
    mouth = np.full(100, 0.3)
    mouth[20:23] = 0.0  # the /m/ at 0.8-0.9 s closes; the /b/ at 2.4-2.5 s does not
    phones = [
        M.Phone("AH", 0.0, 0.8),
        M.Phone("M", 0.8, 0.9),
        M.Phone("IY", 0.9, 2.4),
        M.Phone("B", 2.4, 2.5),
        M.Phone("AA", 2.5, 4.0),
    ]
    rate, why = M.bilabial_closure_rate(mouth, phones, fps)
    assert rate == pytest.approx(0.5) and why == ""
    rate, why = M.bilabial_closure_rate(mouth, [], fps)
    assert math.isnan(rate) and "phone" in why
    # a mouth that stays shut around the /m/ closes it, but does not articulate it
    shut = mouth.copy()
    shut[10:30] = 0.0
    assert M.bilabial_closure_rate(shut, phones, fps)[0] == 0.0


def test_speed_summary_from_profile():
    from talkingface.pipeline.profiling import Profile, StageEvent

    prof = Profile(wall_s=2.0, audio_s=4.0, frames=100)
    prof.events += [
        StageEvent("audio", "energy", "encode", 0.0, 100.0, 100, peak_mem_mb=50.0),
        StageEvent("render", "meshwarp", "render", 0.1, 1000.0, 100, peak_mem_mb=80.0),
        StageEvent("render", "meshwarp", "ensure_loaded", 0.0, 30.0, 0, peak_mem_mb=40.0),
    ]
    s = M.speed_summary(prof)
    assert s["ms_per_frame.audio.encode"] == pytest.approx(1.0)
    assert s["ms_per_frame.render.render"] == pytest.approx(10.0)
    assert s["fps"] == pytest.approx(50.0)
    assert s["real_time_factor"] == pytest.approx(0.5)
    assert math.isnan(s["start_latency_ms"])
    assert s["peak_mem_mb"] == 80.0
    assert s["ms_total.render.ensure_loaded"] == 30.0
    assert "ms_per_frame.render.ensure_loaded" not in s
