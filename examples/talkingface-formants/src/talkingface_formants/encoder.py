"""An audio encoder with no trained weights: LPC formants, loudness and voicing mapped through the
classic vowel chart onto the viseme posteriors of talkingface's built-in ``visemes`` encoder.

Every 10 ms it measures loudness, voicing (autocorrelation peak), the formants F1-F3 (roots of a
linear-prediction polynomial) and the spectral centroid; nothing depends on a language or on
training data. The output has the same ``feature_kind`` and columns as the built-in phonetic
encoder, so any motion generator that accepts ``"visemes"`` (the built-in ``rules`` one among
them) can be driven by it.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from talkingface.pipeline.contracts import VISEME_FEATURES as FEATURES
from talkingface.pipeline.contracts import VISEMES, Audio, AudioFeatures
from talkingface.pipeline.stages import AudioEncoder

LEVEL_FLOOR_DB, LEVEL_RANGE_DB = -60.0, 45.0
"""The built-in encoders' fixed loudness-to-level mapping: -60 dB is level 0, -15 dB level 1."""

SAMPLE_RATE = 16000
HOP = 160
"""Samples between analysis frames (10 ms); frame ``k`` is centred on stream sample ``k * HOP``."""
LPC_WIN = 400
"""Samples in the LPC and loudness window (25 ms)."""
PITCH_WIN = 640
"""Samples in the voicing window (40 ms: two periods of an 80 Hz voice)."""
LPC_ORDER = 2 + SAMPLE_RATE // 1000
"""One pole pair per kHz of bandwidth (a formant per kHz), plus a pair for the spectral tilt."""
PRE_EMPHASIS = 0.97
N_FFT = 1024
"""FFT size: at least PITCH_WIN + MAX_LAG, so the FFT autocorrelation does not wrap around."""
MIN_LAG, MAX_LAG = SAMPLE_RATE // 500, SAMPLE_RATE // 80
"""Pitch periods searched for voicing (500 Hz down to 80 Hz)."""
MIN_FORMANT_HZ = 200.0
"""Poles below this model the glottal source, not the vocal tract."""
MAX_F1_HZ = 1200.0
"""F1 of the most open vowels stays below this."""
PAST = 20
"""Analysis frames of the past (200 ms) that the local loudness reference sees."""
AHEAD = 10
"""Analysis frames of the future (100 ms): a lip closure is only known once the voice returns."""
CLOSURE_BEFORE = 15
"""A quiet frame with voice within 150 ms before and 100 ms after it is a lip closure (p b m)."""
MAX_FPS = SAMPLE_RATE / HOP
"""Above this, some video frames would hold no analysis frame."""

VOWEL_CHART: dict[str, tuple[float, float]] = {
    "aa": (750.0, 1250.0),
    "E": (550.0, 1900.0),
    "ih": (330.0, 2300.0),
    "oh": (550.0, 950.0),
    "ou": (350.0, 900.0),
}
"""(F1, F2) in Hz of each vowel viseme: round values near the mean of adult men and women in
Peterson & Barney (1952). High F1 = open jaw (aa), low F1 + low F2 = rounded lips (ou, oh), high
F2 = spread lips (ih, E)."""

FRICATIVE_CENTROIDS: dict[str, float] = {"SS": 6000.0, "CH": 3500.0, "kk": 1800.0}
"""Spectral centroid in Hz of loud unvoiced sounds: s z (SS), sh ch (CH), k g h bursts (kk)."""

_COL = {name: i for i, name in enumerate(VISEMES)}


@dataclass
class FormantConfig:
    """Parameters of the ``formants`` encoder.

    Attributes:
        silence_db: loudness (dB re a full-scale square wave, mean square over 25 ms) below
            which a frame is silence; raise it for noisy recordings.
        formant_scale: multiplies the vowel-chart targets; 1.0 fits adult voices, about 1.15
            fits children (shorter vocal tracts have higher formants).
        chart_width: softness of the vowel chart in Bark; larger blends neighbouring vowels more.
        max_bandwidth_hz: LPC poles broader than this are not formants (tilt, noise, poles
            fitted to single harmonics); below 1200 Hz, where F1 lies, 1.5 times this.
    """

    silence_db: float = -50.0
    formant_scale: float = 1.0
    chart_width: float = 1.0
    max_bandwidth_hz: float = 400.0


class FormantVisemeEncoder(AudioEncoder):
    """Viseme posteriors + speech level ``[T, 16]`` from LPC formants (no trained weights).

    Same columns as the built-in ``visemes`` encoder: the 15 posteriors sum to 1, ``level`` is
    loudness mapped to 0..1. Frames also depend on loudness and voicing up to 220 ms back and
    120 ms ahead (``context_s`` / ``lookahead_s``), for the local loudness reference and the
    lip-closure cue.
    """

    name = "formants"
    feature_kind = "visemes"
    feature_names = FEATURES
    sample_rate = SAMPLE_RATE
    context_s = (PAST * HOP + PITCH_WIN // 2 + 1) / SAMPLE_RATE
    lookahead_s = (AHEAD * HOP + PITCH_WIN // 2) / SAMPLE_RATE
    max_fps = MAX_FPS
    Config = FormantConfig

    def load(self) -> None:
        self.lpc_window = torch.hamming_window(LPC_WIN, periodic=False, dtype=torch.float64)
        self.pitch_window = torch.hann_window(PITCH_WIN, periodic=False, dtype=torch.float64)
        # Autocorrelation of the window itself: dividing by it undoes the taper's decay, so a
        # perfectly periodic signal scores 1 at its period whatever the lag.
        window_ac = _autocorrelation(self.pitch_window[None], MAX_LAG)[0]
        self.window_ac = window_ac / window_ac[0]
        freqs = torch.fft.rfftfreq(N_FFT, 1.0 / SAMPLE_RATE, dtype=torch.float64)
        self.centroid_band = (freqs >= 300.0) & (freqs <= 7800.0)
        self.band_freqs = freqs[self.centroid_band]
        self.loaded = True

    def encode(
        self, audio: Audio, fps: float, frames: tuple[int, int] | None = None
    ) -> AudioFeatures:
        samples = self.check_audio(audio, fps).double()
        self.ensure_loaded()
        first, stop = frames if frames is not None else self.frame_range(audio, fps)
        if stop <= first:
            return AudioFeatures(torch.zeros(0, len(FEATURES)), fps, self.feature_kind, FEATURES,
                                 first)
        k0, k1 = _centre_index(first, fps), _centre_index(stop, fps)
        span = _analysis_frames(samples, audio.offset, k0 - PAST, k1 + AHEAD)
        cues = self.measure(span)
        level = (cues["loudness"][PAST:PAST + k1 - k0] - LEVEL_FLOOR_DB) / LEVEL_RANGE_DB
        columns = torch.cat([self.posteriors(cues), level.clamp(0.0, 1.0)[:, None]], dim=1)
        values = _pool_to_video(columns, k0, first, stop, fps)
        return AudioFeatures(values.float(), fps, self.feature_kind, FEATURES, first)

    def measure(self, span: torch.Tensor) -> dict[str, torch.Tensor]:
        """Acoustic cues of analysis frames ``[K, PITCH_WIN + 1]`` (see ``_analysis_frames``).

        Returns ``[K]`` tensors ``loudness`` (dB re a full-scale square wave) and ``voicing``
        (0..1 periodicity), and for the ``K - PAST - AHEAD`` frames with full context (the only
        ones that need them) ``f1``, ``f2``, ``f3`` (Hz, inf where no formant was found) and
        ``centroid`` (Hz).
        """
        lead = PITCH_WIN // 2 - LPC_WIN // 2 + 1  # where the LPC window starts inside the span
        raw = span[:, lead:lead + LPC_WIN]
        power = raw.square().mean(1)
        centre = span[PAST:span.shape[0] - AHEAD]
        emphasised = (centre[:, lead:lead + LPC_WIN]
                      - PRE_EMPHASIS * centre[:, lead - 1:lead - 1 + LPC_WIN])
        lpc = _levinson(_autocorrelation(emphasised * self.lpc_window, LPC_ORDER), LPC_ORDER)
        f1, f2, f3 = _formants(lpc, self.config.max_bandwidth_hz).unbind(1)

        spec_power = _power_spectrum(span[:, 1:] * self.pitch_window)
        ac = torch.fft.irfft(spec_power, n=N_FFT)[:, :MAX_LAG + 1]
        normalised = ac[:, MIN_LAG:] / (ac[:, :1] + 1e-12) / self.window_ac[MIN_LAG:]
        voicing = normalised.amax(1).clamp(0.0, 1.0)

        band = spec_power[PAST:span.shape[0] - AHEAD, self.centroid_band]
        centroid = (band * self.band_freqs).sum(1) / (band.sum(1) + 1e-12)
        return {
            "loudness": 10.0 * torch.log10(power + 1e-10),
            "voicing": voicing,
            "f1": f1, "f2": f2, "f3": f3,
            "centroid": centroid.clamp(min=300.0),
        }

    def posteriors(self, cues: dict[str, torch.Tensor]) -> torch.Tensor:
        """Viseme posteriors ``[K - PAST - AHEAD, 15]`` of the frames that have full context."""
        cfg = self.config
        loud = cues["loudness"]
        n = loud.shape[0] - PAST - AHEAD
        here = slice(PAST, PAST + n)

        # Loudness relative to the loudest frame nearby: a running, local reference, so the
        # clip's overall level never matters (and batch == streaming holds).
        rel = loud[here] - loud.unfold(0, PAST + AHEAD + 1, 1).amax(1)
        speech_all = torch.sigmoid((loud - cfg.silence_db) / 3.0)
        voiced_all = torch.sigmoid((cues["voicing"] - 0.5) / 0.07)
        voiced_speech = speech_all * voiced_all
        before = voiced_speech[PAST - CLOSURE_BEFORE:PAST - 1 + n].unfold(0, CLOSURE_BEFORE, 1)
        after = voiced_speech[PAST + 1:].unfold(0, AHEAD, 1)
        closure = before.amax(1) * after.amax(1)

        speech = speech_all[here] * torch.sigmoid((rel + 35.0) / 3.0)
        voiced = voiced_all[here]
        f1, f2, f3 = cues["f1"], cues["f2"], cues["f3"]
        out = torch.zeros(n, len(VISEMES), dtype=torch.float64)

        quiet = 1.0 - speech
        out[:, _COL["sil"]] = quiet * (1.0 - closure)
        out[:, _COL["PP"]] = quiet * closure

        voiced_mass = speech * voiced
        # Nasal murmur: voiced, weaker than the vowels around it, low first resonance. The
        # murmur of m (lips shut) and of n/ng (lips apart) look alike, so it is split evenly.
        low_f1 = torch.where(torch.isfinite(f1), torch.sigmoid((450.0 - f1) / 50.0), 0.0)
        nasal = voiced_mass * torch.sigmoid((-rel - 12.0) / 3.0) * low_f1
        out[:, _COL["nn"]] = 0.5 * nasal
        out[:, _COL["PP"]] += 0.5 * nasal
        oral = voiced_mass - nasal
        # r-colouring pulls F3 down from about 2500 Hz towards 1600 Hz.
        rhotic = torch.where(torch.isfinite(f3), torch.sigmoid((1900.0 - f3) / 120.0), 0.0)
        out[:, _COL["RR"]] = oral * rhotic
        vowel_cols = [_COL[v] for v in VOWEL_CHART]
        out[:, vowel_cols] = (oral * (1.0 - rhotic))[:, None] * self.vowel_chart(f1, f2)

        unvoiced = speech * (1.0 - voiced)
        # f/v (and th) are weak, flat-spectrum frication; s, sh and bursts are loud.
        weak = torch.sigmoid((-rel - 18.0) / 3.0)
        out[:, _COL["FF"]] = unvoiced * weak
        centres = torch.tensor(list(FRICATIVE_CENTROIDS.values()), dtype=torch.float64)
        log_dist = torch.log(cues["centroid"][:, None] / centres)
        fricatives = torch.softmax(-0.5 * (log_dist / 0.25).square(), dim=1)
        fric_cols = [_COL[c] for c in FRICATIVE_CENTROIDS]
        out[:, fric_cols] = (unvoiced * (1.0 - weak))[:, None] * fricatives
        return out

    def vowel_chart(self, f1: torch.Tensor, f2: torch.Tensor) -> torch.Tensor:
        """Soft vowel class ``[K, 5]`` (order of VOWEL_CHART) of formants ``[K]`` in Hz.

        Frames without two formants get the neutral mid vowel (schwa, F1 500 / F2 1500 Hz).
        """
        found = torch.isfinite(f1) & torch.isfinite(f2)
        f1 = torch.where(found, f1, 500.0 * self.config.formant_scale)
        f2 = torch.where(found, f2, 1500.0 * self.config.formant_scale)
        targets = torch.tensor(list(VOWEL_CHART.values()), dtype=torch.float64)
        targets = _bark(targets * self.config.formant_scale)
        # F1 (jaw height) separates vowels on a finer Bark scale than F2 (tongue front/back).
        d1 = (_bark(f1)[:, None] - targets[:, 0]) / (0.8 * self.config.chart_width)
        d2 = (_bark(f2)[:, None] - targets[:, 1]) / (1.2 * self.config.chart_width)
        return torch.softmax(-0.5 * (d1.square() + d2.square()), dim=1)


def _centre_index(t: int, fps: float) -> int:
    """First analysis frame centred at or after the first sample of video frame ``t``."""
    start = math.floor(t * SAMPLE_RATE / fps + 1e-9)
    return -(-start // HOP)


def _analysis_frames(samples: torch.Tensor, offset: int, k0: int, k1: int) -> torch.Tensor:
    """Analysis frames ``k0 .. k1-1`` as ``[k1 - k0, PITCH_WIN + 1]``: stream samples
    ``[k*HOP - PITCH_WIN/2 - 1, k*HOP + PITCH_WIN/2)`` (one extra sample for the pre-emphasis).

    ``samples [S]`` holds stream samples ``[offset, offset + S)``; anything outside reads as 0,
    which is exactly what the locality contract prescribes before the start and after the end.
    """
    width, lead = PITCH_WIN + 1, PITCH_WIN // 2 + 1
    lo, hi = k0 * HOP - lead, (k1 - 1) * HOP - lead + width
    span = torch.zeros(hi - lo, dtype=torch.float64)
    src_lo, src_hi = max(lo, offset, 0), min(hi, offset + samples.shape[0])
    if src_hi > src_lo:
        span[src_lo - lo:src_hi - lo] = samples[src_lo - offset:src_hi - offset]
    return span.unfold(0, width, HOP)


def _power_spectrum(frames: torch.Tensor) -> torch.Tensor:
    """``|FFT|^2`` ``[K, N_FFT // 2 + 1]`` of frames ``[K, N]``, zero-padded to N_FFT."""
    spectrum = torch.fft.rfft(frames, n=N_FFT)
    return spectrum.real.square() + spectrum.imag.square()


def _autocorrelation(frames: torch.Tensor, max_lag: int) -> torch.Tensor:
    """Autocorrelation ``[K, max_lag + 1]`` of frames ``[K, N]`` (N + max_lag <= N_FFT)."""
    return torch.fft.irfft(_power_spectrum(frames), n=N_FFT)[:, :max_lag + 1]


def _levinson(r: torch.Tensor, order: int) -> torch.Tensor:
    """LPC polynomials ``[K, order + 1]`` (leading 1) from autocorrelations ``[K, order + 1]``,
    by the Levinson-Durbin recursion, all frames at once."""
    # A -60 dB white-noise floor keeps the recursion stable on silent or clipped frames.
    r = r.clone()
    r[:, 0] = r[:, 0] * (1.0 + 1e-6) + 1e-12
    a = torch.zeros_like(r)
    a[:, 0] = 1.0
    error = r[:, 0].clone()
    for i in range(1, order + 1):
        acc = r[:, i] + (a[:, 1:i] * r[:, 1:i].flip(1)).sum(1)
        k = -acc / error
        a[:, 1:i] = a[:, 1:i] + k[:, None] * a[:, 1:i].flip(1)
        a[:, i] = k
        error = error * (1.0 - k.square())
    return a


def _formants(lpc: torch.Tensor, max_bandwidth: float) -> torch.Tensor:
    """The three lowest formant frequencies ``[K, 3]`` in Hz (inf where fewer were found).

    The LPC polynomial's complex roots are the vocal tract's resonances: angle = frequency,
    distance from the unit circle = bandwidth. Broad or very low roots are not formants.
    """
    k, p = lpc.shape[0], lpc.shape[1] - 1
    companion = torch.zeros(k, p, p, dtype=torch.float64)
    companion[:, 0, :] = -lpc[:, 1:]
    companion[:, 1:, :-1] = torch.eye(p - 1, dtype=torch.float64)
    roots = torch.linalg.eigvals(companion)
    freq = roots.angle() * (SAMPLE_RATE / (2 * math.pi))
    bandwidth = -torch.log(roots.abs().clamp(min=1e-12)) * (SAMPLE_RATE / math.pi)
    # F1 is damped most by the open glottis, so it may be broader than the higher formants.
    limit = torch.where(freq <= MAX_F1_HZ, 1.5 * max_bandwidth, max_bandwidth)
    keep = (
        (roots.imag > 0)
        & (freq >= MIN_FORMANT_HZ)
        & (freq <= SAMPLE_RATE / 2 - 100.0)
        & (bandwidth < limit)
    )
    freq = torch.where(keep, freq, math.inf).sort(dim=1).values[:, :3]
    # No resonance low enough to be F1 (a fricative, or F1 lost): then the others are unknown.
    return torch.where(freq[:, :1] <= MAX_F1_HZ, freq, math.inf)


def _bark(hz: torch.Tensor) -> torch.Tensor:
    """Hz to the Bark scale of auditory frequency resolution (Traunmüller 1990)."""
    return 26.81 * hz / (1960.0 + hz) - 0.53


def _pool_to_video(values: torch.Tensor, k0: int, first: int, stop: int, fps: float):
    """Mean of the analysis-frame rows ``[K, D]`` (frames ``k0 ..``) centred in each video frame
    ``first .. stop-1``: ``[stop - first, D]``."""
    bounds = torch.tensor([_centre_index(t, fps) - k0 for t in range(first, stop + 1)])
    starts, counts = bounds[:-1], bounds[1:] - bounds[:-1]
    # Each video frame sums its own few rows in a fixed order, whatever the chunking.
    offsets = torch.arange(int(counts.max()))
    rows = (starts[:, None] + offsets).clamp(max=values.shape[0] - 1)
    inside = (offsets < counts[:, None]).to(values.dtype)
    return (values[rows] * inside[:, :, None]).sum(1) / counts[:, None]
