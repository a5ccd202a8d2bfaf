"""Quality and speed metrics for talking-face videos, as pure functions on per-frame signals.

Every metric here works without downloaded weights: the per-frame signals (mouth opening, eye
openness, head pose) come from the face landmarker of :mod:`talkingface.face`,
the audio signals from the waveform itself. Inputs are numpy arrays or torch tensors; outputs
are Python floats (NaN when a metric cannot be computed, with the reason next to it where the
caller needs one). Each function's docstring gives the definition, the unit and the direction
(which way is better).
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

_PHONE_MARKS = "ˈˌːˑ'_-.0123456789ʰʲʷ̚"  # stress, length, ARPAbet stress digits, modifiers


def is_bilabial(label: str) -> bool:
    """Whether a phone label is a bilabial (p, b, m: the lips must close), in ARPAbet
    (``P``, ``B``, ``M``, ``EM``) or IPA (``p``, ``bʲ``, ``ˈm``...)."""
    base = "".join(c for c in label.strip().lower() if c not in _PHONE_MARKS)
    return base in ("p", "b", "m", "em")


def _as_array(x) -> np.ndarray:
    if isinstance(x, torch.Tensor):
        x = x.detach().cpu().numpy()
    return np.asarray(x, dtype=np.float64)


# --- audio --------------------------------------------------------------------------------


def frame_energy_db(samples, sample_rate: int, fps: float, num_frames: int | None = None):
    """Audio loudness per video frame: RMS of the samples each frame covers, in dB.

    Frame ``t`` covers the samples of ``[t / fps, (t + 1) / fps)``. 0 dB is full scale; a
    silent frame is clipped at -100 dB.

    Args:
        samples: mono waveform ``[S]`` in -1..1.
        sample_rate: samples per second.
        fps: video frame rate.
        num_frames: frames to return (default: enough to cover the audio); missing audio at
            the end reads as silence.

    Returns:
        ``[T]`` float64 array, dB re full scale.
    """
    x = _as_array(samples).reshape(-1)
    if num_frames is None:
        num_frames = max(1, math.ceil(len(x) * fps / sample_rate - 1e-9))
    bounds = np.round(np.arange(num_frames + 1) * sample_rate / fps).astype(np.int64)
    power = np.concatenate([[0.0], np.cumsum(x * x)])
    lo = np.clip(bounds[:-1], 0, len(x))
    hi = np.clip(bounds[1:], 0, len(x))
    counts = np.maximum(bounds[1:] - bounds[:-1], 1)
    rms = np.sqrt((power[hi] - power[lo]) / counts)
    return 20.0 * np.log10(np.maximum(rms, 1e-5))


def silence_mask(energy_db, *, rel: float = 0.35) -> np.ndarray:
    """Frames that are silent, from per-frame energy: below an adaptive threshold.

    The threshold sits ``rel`` of the way from the noise floor (10th percentile of the energy)
    to the speech level (95th percentile), in dB, so it adapts to recording level and noise.
    A clip whose levels span less than 10 dB has no contrast to judge and counts as all speech.

    Returns:
        ``[T]`` bool array, True where silent.
    """
    e = _as_array(energy_db)
    if e.size == 0:
        return np.zeros(0, dtype=bool)
    floor, speech = np.percentile(e, 10), np.percentile(e, 95)
    if speech - floor < 10.0:
        return np.zeros(e.shape, dtype=bool)
    return e < floor + rel * (speech - floor)


def runs(mask) -> list[tuple[int, int]]:
    """Maximal runs of True in a 1-D bool mask as ``(start, stop)`` index pairs (stop excluded)."""
    m = np.asarray(mask, dtype=bool).reshape(-1)
    edges = np.diff(np.concatenate([[0], m.astype(np.int8), [0]]))
    starts = np.flatnonzero(edges == 1)
    stops = np.flatnonzero(edges == -1)
    return list(zip(starts.tolist(), stops.tolist(), strict=True))


def silences(energy_db, fps: float, *, min_ms: float = 300.0, rel: float = 0.35):
    """Silent stretches of at least ``min_ms`` milliseconds, as frame ``(start, stop)`` pairs."""
    min_frames = max(1, math.ceil(min_ms * fps / 1000.0 - 1e-9))
    return [(a, b) for a, b in runs(silence_mask(energy_db, rel=rel)) if b - a >= min_frames]


# --- lip sync -----------------------------------------------------------------------------


def _pearson(a: np.ndarray, b: np.ndarray) -> float:
    ok = np.isfinite(a) & np.isfinite(b)
    a, b = a[ok], b[ok]
    if len(a) < 3:
        return math.nan
    a, b = a - a.mean(), b - b.mean()
    den = math.sqrt(float((a * a).sum()) * float((b * b).sum()))
    return float((a * b).sum() / den) if den > 1e-12 else math.nan


def lagged_correlation(reference, test, lag: int) -> float:
    """Pearson correlation of ``reference[t]`` with ``test[t + lag]`` over their overlap.

    A positive ``lag`` means ``test`` runs late (it shows at ``t + lag`` what ``reference``
    shows at ``t``). Frames where either signal is NaN (face not found) are left out.
    """
    r, x = _as_array(reference).reshape(-1), _as_array(test).reshape(-1)
    n = min(len(r), len(x))
    r, x = r[:n], x[:n]
    if lag >= 0:
        return _pearson(r[: n - lag], x[lag:])
    return _pearson(r[-lag:], x[: n + lag])


def best_lag_correlation(
    reference, test, max_lag: int = 3, *, min_std: float = 0.0
) -> tuple[float, int]:
    """Highest Pearson correlation of two per-frame signals over lags within ``±max_lag``.

    This is the lip-sync score against ground truth: ``reference`` is the mouth opening
    measured on the real video, ``test`` the mouth opening measured on the generated one, both
    at the same frame rate. The small lag window forgives a frame or two of constant offset
    (a smoothed generator) without rewarding a badly shifted one.

    Pearson r ignores scale, so a mouth that barely moves (landmark noise only) could still
    correlate by chance; ``min_std`` (in the signal's units) declares such a ``test`` still:
    it scores 0, no correlation.

    Returns:
        ``(r, lag)``: r is dimensionless in -1..1, **higher is better** (1 = the same shape
        of mouth movement); lag is in frames, positive when ``test`` runs late. ``(nan, 0)``
        when either signal is constant or too short.
    """
    x = _as_array(test)
    if min_std > 0 and np.isfinite(x).sum() >= 3 and float(np.nanstd(x)) < min_std:
        return 0.0, 0
    best, best_lag = -math.inf, 0
    for lag in range(-max_lag, max_lag + 1):
        r = lagged_correlation(reference, test, lag)
        if np.isfinite(r) and (r > best or (r == best and abs(lag) < abs(best_lag))):
            best, best_lag = r, lag
    return (best, best_lag) if np.isfinite(best) else (math.nan, 0)


def av_offset(energy_db, mouth, fps: float, max_lag: int = 15) -> tuple[float, float, float]:
    """Audio-visual offset: the lag that best aligns audio loudness with mouth opening.

    Cross-correlates per-frame audio energy (dB) with mouth opening for lags within
    ``±max_lag`` frames and takes the lag of the highest correlation. Speech is loudest when
    the mouth is open, so a well-synced video peaks near 0. Energy below 40 dB under the
    speech level (95th percentile) is clipped as background noise. Real speakers often keep
    the mouth open through pauses, so on real videos the correlation is weak (|r| < 0.3 on
    our evaluation clips) and the offset is only trustworthy when r is clearly positive;
    on generated videos, where the mouth follows the audio, it is sharp.

    Returns:
        ``(lag_frames, lag_ms, r)``: positive lag = the mouth moves after the sound (video
        late). **Closer to 0 is better.** r is the correlation at that lag (dimensionless,
        higher = the mouth follows the loudness more closely). NaNs when a signal is flat.
    """
    e = _as_array(energy_db)
    if e.size and np.isfinite(e).any():
        # Loudness below 40 dB under the speech level is background noise, not speech: clip
        # it so the noise floor's wobble does not steer the correlation.
        e = np.maximum(e, np.nanpercentile(e, 95) - 40.0)
    r, lag = best_lag_correlation(e, mouth, max_lag)
    if not np.isfinite(r):
        return math.nan, math.nan, math.nan
    return float(lag), 1000.0 * lag / fps, r


@dataclass(frozen=True)
class Phone:
    """One phone of a transcript with its timing (seconds)."""

    label: str
    start: float
    end: float


def bilabial_closure_rate(
    mouth,
    phones: Iterable[Phone],
    fps: float,
    *,
    closed_fraction: float = 0.35,
    around_s: float = 0.2,
) -> tuple[float, str]:
    """Fraction of bilabial phones (p, b, m) during which the lips actually close.

    For each bilabial phone, the minimum mouth opening over its frames (widened by one frame on
    each side, for rounding) is compared with a closure threshold: ``closed_fraction`` of the
    median mouth opening during the clip's non-bilabial phones. A closure only counts when the
    mouth also opens around it (to at least that median within ``around_s`` seconds before or
    after the phone), so a mouth that stays shut, or one that lags the audio and is still shut
    when the speech starts, does not score. No single source paper: it is the classic viseme
    check (p, b, m need closed lips) measured on landmarks.

    Returns:
        ``(rate, reason)``: rate in 0..1, **higher is better**; NaN with a reason when there are
        no phone timings, no bilabials, or no speech reference.
    """
    m = _as_array(mouth).reshape(-1)
    phones = list(phones)
    if not phones:
        return math.nan, "no phone timings for this input"

    def frames_of(p: Phone) -> np.ndarray:
        a = max(0, int(math.floor(p.start * fps)) - 1)
        b = min(len(m), int(math.ceil(p.end * fps)) + 1)
        return m[a:b]

    bil = [p for p in phones if is_bilabial(p.label)]
    if not bil:
        return math.nan, "no bilabial phones (p, b, m) in the transcript"
    silent = {"", "sil", "sp", "spn", "pau", "<sil>"}
    others = [
        frames_of(p) for p in phones if p not in bil and p.label.lower() not in silent
    ]
    ref = np.concatenate(others) if others else np.zeros(0)
    ref = ref[np.isfinite(ref)]
    if ref.size == 0:
        return math.nan, "no non-bilabial speech to set the closure threshold"
    level = float(np.median(ref))
    threshold = closed_fraction * level
    closed = []
    for p in bil:
        seg = frames_of(p)
        seg = seg[np.isfinite(seg)]
        near = frames_of(Phone(p.label, p.start - around_s, p.end + around_s))
        near = near[np.isfinite(near)]
        if seg.size:
            closed.append(float(seg.min()) <= threshold and float(near.max()) >= level)
    if not closed:
        return math.nan, "no face measured during the bilabial phones"
    return float(np.mean(closed)), ""


# --- motion -------------------------------------------------------------------------------


def delta_p(angles) -> float:
    """ΔP, VASA-1's pose variation intensity: mean absolute pose-angle change per frame.

    ``mean over t and over (yaw, pitch, roll) of |angle[t+1] - angle[t]|``. Source: VASA-1
    (Xu et al. 2024, arXiv 2404.10667, Sec. 4.1), where real videos score about 0.2-0.3 and
    generators aim to match that. Not a "higher is better" metric: **closer to the real video's
    ΔP is better** (0 = a frozen head, large = shaky).

    Args:
        angles: ``[T, 3]`` yaw, pitch, roll in radians (or ``[T, 6]`` Motion.pose: the first
            three columns are used).

    Returns:
        degrees per frame; NaN for fewer than 2 frames.
    """
    a = _as_array(angles)
    a = a[:, :3] if a.ndim == 2 else a.reshape(-1, 1)
    if len(a) < 2:
        return math.nan
    return float(np.degrees(np.nanmean(np.abs(np.diff(a, axis=0)))))


def jitter(signal) -> float:
    """Jitter: mean absolute second difference over frames (and over columns).

    ``mean |x[t+1] - 2 x[t] + x[t-1]|``: zero for still or constant-velocity motion, large for
    frame-to-frame shake. Same unit as the signal per frame²; **lower is better** (down to what
    the real video shows). Applied to pose angles (converted to degrees by the caller) and to
    landmark positions (as fractions of the face height).
    """
    x = _as_array(signal)
    x = x.reshape(len(x), -1) if x.ndim else x.reshape(-1, 1)
    if len(x) < 3:
        return math.nan
    return float(np.nanmean(np.abs(x[2:] - 2 * x[1:-1] + x[:-2])))


@dataclass(frozen=True)
class BlinkStats:
    """Blinks found in an eye-openness signal.

    Attributes:
        count: number of blinks.
        per_minute: blinks per minute (people blink about 10-20 times a minute while talking;
            **closer to natural is better**).
        mean_duration_ms: mean time from closing to reopening, ms (natural: 100-400 ms).
        intervals: ``(start, stop)`` frame indices of each blink (stop excluded).
    """

    count: int
    per_minute: float
    mean_duration_ms: float
    intervals: tuple[tuple[int, int], ...]


def blinks(openness, fps: float, *, close: float = 0.55, reopen: float = 0.75) -> BlinkStats:
    """Blinks from eye openness with hysteresis thresholds.

    Openness (eyelid gap / eye width, ``[T]`` or ``[T, 2]`` averaged over both eyes) is divided
    by its median (the open-eye level of this face), so thresholds are relative: an eye is
    closing once it drops below ``close`` and the blink ends when it rises back above
    ``reopen``. The gap between the two thresholds keeps landmark noise from splitting one
    blink in two. NaN frames (no face) keep the current state.
    """
    x = _as_array(openness)
    if x.ndim == 2:
        x = np.nanmean(x, axis=1)
    minutes = len(x) / fps / 60.0
    base = np.nanmedian(x) if np.isfinite(x).any() else math.nan
    if not np.isfinite(base) or base <= 0 or minutes <= 0:
        return BlinkStats(0, math.nan, math.nan, ())
    rel = x / base
    found, start = [], None
    for t, v in enumerate(rel):
        if not np.isfinite(v):
            continue
        if start is None and v < close:
            start = t
        elif start is not None and v > reopen:
            found.append((start, t))
            start = None
    durations = [1000.0 * (b - a) / fps for a, b in found]
    return BlinkStats(
        len(found),
        len(found) / minutes,
        float(np.mean(durations)) if durations else math.nan,
        tuple(found),
    )


def silent_lip_stability(mouth, spans: Iterable[tuple[int, int]]) -> tuple[float, float]:
    """How still the lips stay while nobody speaks.

    Over every silent span (frame ``(start, stop)``, e.g. from :func:`silences` with silences of
    300 ms or more): the standard deviation of mouth opening within each span, and the mean
    absolute frame-to-frame change, both averaged over spans weighted by length. A real face
    at rest scores near 0; a generator that keeps mumbling through pauses scores high.

    Returns:
        ``(std, movement)``, both in mouth-opening units (fraction of face height, per frame for
        movement); **lower is better**. NaNs when there is no silent span.
    """
    m = _as_array(mouth).reshape(-1)
    stds, moves, weights = [], [], []
    for a, b in spans:
        seg = m[a:b]
        seg = seg[np.isfinite(seg)]
        if len(seg) < 2:
            continue
        stds.append(float(seg.std()))
        moves.append(float(np.abs(np.diff(seg)).mean()))
        weights.append(len(seg))
    if not weights:
        return math.nan, math.nan
    return float(np.average(stds, weights=weights)), float(np.average(moves, weights=weights))


# --- fidelity -----------------------------------------------------------------------------


def _images(a, b) -> tuple[torch.Tensor, torch.Tensor]:
    ta = torch.as_tensor(np.asarray(a) if not isinstance(a, torch.Tensor) else a)
    tb = torch.as_tensor(np.asarray(b) if not isinstance(b, torch.Tensor) else b)
    if ta.shape != tb.shape:
        raise ValueError(f"images differ in shape: {tuple(ta.shape)} vs {tuple(tb.shape)}")
    return ta.to(torch.float64), tb.to(torch.float64)


def psnr(a, b, mask=None, *, peak: float = 255.0) -> float:
    """Peak signal-to-noise ratio of two images, optionally inside a mask.

    ``10 log10(peak² / MSE)`` with the MSE over the masked pixels and all channels.

    Args:
        a, b: ``[H, W, 3]`` (or ``[H, W]``) images on the same scale (uint8: ``peak=255``).
        mask: optional ``[H, W]`` bool, True where to compare.

    Returns:
        dB, **higher is better**; ``inf`` for identical images, NaN for an empty mask.
    """
    ta, tb = _images(a, b)
    err = (ta - tb) ** 2
    if err.ndim == 3:
        err = err.mean(dim=-1)
    if mask is not None:
        m = torch.as_tensor(np.asarray(mask) if not isinstance(mask, torch.Tensor) else mask)
        err = err[m.bool()]
    if err.numel() == 0:
        return math.nan
    mse = float(err.mean())
    return math.inf if mse == 0 else 10.0 * math.log10(peak * peak / mse)


def _gaussian_window(size: int = 11, sigma: float = 1.5) -> torch.Tensor:
    x = torch.arange(size, dtype=torch.float64) - (size - 1) / 2
    g = torch.exp(-(x * x) / (2 * sigma * sigma))
    return g / g.sum()


def ssim(a, b, mask=None, *, peak: float = 255.0) -> float:
    """Structural similarity (SSIM) of two images, optionally averaged inside a mask.

    Wang et al. 2004 ("Image quality assessment: from error visibility to structural
    similarity"): an 11×11 Gaussian window (σ = 1.5), K1 = 0.01, K2 = 0.03, computed on the
    luma (BT.601) of RGB images, and the SSIM map averaged over the masked pixels.

    Returns:
        dimensionless, at most 1, **higher is better** (1 = identical); NaN for an empty mask.
    """
    ta, tb = _images(a, b)
    if ta.ndim == 3:
        luma = torch.tensor([0.299, 0.587, 0.114], dtype=torch.float64)
        ta, tb = ta @ luma, tb @ luma
    # float32 is plenty for 8-bit images and much faster than float64 convolution on a CPU;
    # the five local statistics are blurred together as channels of one grouped convolution.
    x = torch.stack([ta, tb, ta * ta, tb * tb, ta * tb]).float()[None]
    g = _gaussian_window().float()
    pad = len(g) // 2
    x = F.pad(x, (pad, pad, pad, pad), mode="replicate")
    x = F.conv2d(x, g.view(1, 1, 1, -1).expand(5, 1, 1, -1), groups=5)
    mu_a, mu_b, ea2, eb2, eab = F.conv2d(x, g.view(1, 1, -1, 1).expand(5, 1, -1, 1),
                                         groups=5)[0].double()
    c1, c2 = (0.01 * peak) ** 2, (0.03 * peak) ** 2
    var_a, var_b, cov = ea2 - mu_a**2, eb2 - mu_b**2, eab - mu_a * mu_b
    smap = ((2 * mu_a * mu_b + c1) * (2 * cov + c2)) / (
        (mu_a**2 + mu_b**2 + c1) * (var_a + var_b + c2)
    )
    if mask is not None:
        m = torch.as_tensor(np.asarray(mask) if not isinstance(mask, torch.Tensor) else mask)
        smap = smap[m.bool()]
    return float(smap.mean()) if smap.numel() else math.nan


def box_mask(size: tuple[int, int], box, *, inside: bool = True) -> np.ndarray:
    """``[H, W]`` bool mask of the pixels inside (or outside) an ``(x0, y0, x1, y1)`` box."""
    h, w = size
    x0, y0, x1, y1 = (float(v) for v in box)
    ys, xs = np.mgrid[0:h, 0:w]
    m = (xs >= x0) & (xs < x1) & (ys >= y0) & (ys < y1)
    return m if inside else ~m


def head_box(face_box, size: tuple[int, int], *, scale: float = 1.6) -> tuple[float, ...]:
    """Grow a landmark face box to cover the whole head (hair, ears, neck), clipped to the image.

    The box is scaled by ``scale`` about its centre and shifted up by a tenth of its height,
    because the landmarks stop at the hairline while the head (and what a renderer may move)
    extends above it.
    """
    x0, y0, x1, y1 = (float(v) for v in face_box)
    cx, cy = (x0 + x1) / 2, (y0 + y1) / 2 - 0.1 * (y1 - y0)
    hw, hh = scale * (x1 - x0) / 2, scale * (y1 - y0) / 2
    h, w = size
    return max(0.0, cx - hw), max(0.0, cy - hh), min(float(w), cx + hw), min(float(h), cy + hh)


# --- speed --------------------------------------------------------------------------------


def speed_summary(profile) -> dict[str, float]:
    """Speed figures from a pipeline :class:`~talkingface.pipeline.profiling.Profile`.

    Keys: ``ms_per_frame.<kind>.<method>`` for each profiled stage call (e.g.
    ``ms_per_frame.render.render``; **lower is better**), ``fps`` (frames per second end to
    end, **higher is better**), ``real_time_factor`` (processing time / audio duration; below 1
    is faster than real time, **lower is better**), ``start_latency_ms`` (streaming: first audio
    in to first frame out, **lower is better**; NaN for a batch run), ``ms_total.<kind>.<method>``
    for one-off calls that produce no frames (loading, ``render.prepare``; ms, **lower is
    better**) and ``peak_mem_mb`` (the
    highest of the stages: process RSS on CPU, allocator peak on GPU; **lower is better**).
    Stages are keyed by kind, not name, so variants that swap a stage stay comparable.
    """
    rows = profile.rows()
    out: dict[str, float] = {}
    peak = math.nan
    for row in rows or []:
        if row.get("kind") == "sink":
            continue
        if not row.get("frames"):
            # one-off work (loading, preparing the portrait), not per frame: its total
            key = f"ms_total.{row.get('kind', '?')}.{row.get('method', '?')}"
            out[key] = out.get(key, 0.0) + float(row.get("total_ms") or 0.0)
            continue
        key = f"ms_per_frame.{row.get('kind', '?')}.{row.get('method', '?')}"
        ms = row.get("ms_per_frame")
        out[key] = out.get(key, 0.0) + (float(ms) if ms is not None else math.nan)
        mem = row.get("peak_mem_mb")
        if mem is not None and math.isfinite(float(mem)):
            peak = float(mem) if not math.isfinite(peak) else max(peak, float(mem))
    frames, wall_s = profile.frames, profile.wall_s
    out["fps"] = frames / wall_s if frames and wall_s else math.nan
    rtf = profile.real_time_factor
    out["real_time_factor"] = float(rtf) if rtf is not None else math.nan
    lat = profile.start_latency_ms
    out["start_latency_ms"] = float(lat) if lat is not None else math.nan
    out["peak_mem_mb"] = peak
    return out
