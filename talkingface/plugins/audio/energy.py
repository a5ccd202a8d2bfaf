"""Baseline audio encoder: per-frame loudness envelope and spectral shape, no learned weights."""

from __future__ import annotations

from dataclasses import dataclass

import torch

from talkingface.pipeline.contracts import ENERGY_FEATURES, Audio, AudioFeatures
from talkingface.pipeline.stages import AudioEncoder
from talkingface.plugins.audio import mel

_VOICING_WIDTH = 640
"""Samples per voicing frame (40 ms): two periods of a 50 Hz voice."""
_ONSET_FRAMES = 10
"""Analysis frames (100 ms) of past loudness an onset is measured against."""
_MIN_LAG, _MAX_LAG = 40, 267  # 400 Hz .. 60 Hz at 16 kHz: the range of speaking voices


@dataclass
class EnergyConfig:
    """Parameters of the ``energy`` encoder.

    Attributes:
        floor_db: loudness that maps to ``level`` 0 (dB re full scale; quieter is silence).
        range_db: loudness span that maps to ``level`` 0..1 (``floor_db + range_db`` is 1).
    """

    floor_db: float = mel.LEVEL_FLOOR_DB
    range_db: float = mel.LEVEL_RANGE_DB


class EnergyEncoder(AudioEncoder):
    """Loudness and spectral-shape features per video frame: ``[T, 7]`` named columns.

    Columns (each the mean over the 10 ms analysis frames centred in the video frame):

    - ``loudness_db``: frame power in dB re a full-scale square wave (fixed reference, so a
      chunk and the whole clip agree), floored at -100.
    - ``level``: ``loudness_db`` mapped to 0..1 by ``floor_db`` / ``range_db``.
    - ``onset``: rise of loudness (dB, floored at ``floor_db``) over its mean in the previous
      100 ms, 0 when falling; peaks on syllable onsets.
    - ``centroid_khz``: spectral centroid in kHz (high for s/sh/f, low for vowels and hum).
    - ``low_high_db``: energy below 1 kHz over energy above 3 kHz, in dB (±40).
    - ``zcr``: zero crossings per sample (0..1), high for fricatives and noise.
    - ``voicing``: normalised autocorrelation peak over 60–400 Hz periods (0..1), high for
      vowels, voiced consonants and singing.
    """

    name = "energy"
    feature_kind = "energy"
    feature_names = ENERGY_FEATURES
    sample_rate = mel.SAMPLE_RATE
    context_s = (_ONSET_FRAMES * mel.HOP + _VOICING_WIDTH // 2) / mel.SAMPLE_RATE
    lookahead_s = (_VOICING_WIDTH // 2) / mel.SAMPLE_RATE
    max_fps = mel.MAX_FPS
    Config = EnergyConfig

    def encode(
        self, audio: Audio, fps: float, frames: tuple[int, int] | None = None
    ) -> AudioFeatures:
        samples = self.check_audio(audio, fps)
        first, stop = frames if frames is not None else self.frame_range(audio, fps)
        k0, k1 = mel.analysis_range(first, stop, fps)
        if stop <= first:
            return AudioFeatures(torch.zeros(0, len(ENERGY_FEATURES)), fps, self.feature_kind,
                                 ENERGY_FEATURES, first)
        # Loudness reaches _ONSET_FRAMES back so every onset has its reference.
        wide = mel.frames_at(samples, audio.offset, k0 - _ONSET_FRAMES, k1, _VOICING_WIDTH)
        short = wide[:, (_VOICING_WIDTH - mel.WIN) // 2:(_VOICING_WIDTH + mel.WIN) // 2]
        loudness_all = mel.loudness_db(short)
        loudness = loudness_all[_ONSET_FRAMES:]
        # Floored so that speech starting after digital silence is not a 100 dB onset.
        floored = loudness_all.clamp(min=self.config.floor_db)
        past = floored.unfold(0, _ONSET_FRAMES, 1)[:-1].mean(1)
        onset = (floored[_ONSET_FRAMES:] - past).clamp(min=0)
        short = short[_ONSET_FRAMES:]
        power = mel.power_spectrum(short)
        freqs = torch.arange(power.shape[1]) * (mel.SAMPLE_RATE / mel.N_FFT)
        centroid = (power * freqs).sum(1) / (power.sum(1) + 1e-8) / 1000
        low = power[:, freqs < 1000].sum(1)
        high = power[:, freqs > 3000].sum(1)
        low_high = (10 * torch.log10((low + 1e-6) / (high + 1e-6))).clamp(-40, 40)
        zcr = (short[:, 1:] * short[:, :-1] < 0).float().mean(1)
        voicing = _voicing(wide[_ONSET_FRAMES:])
        level = mel.level(loudness, self.config.floor_db, self.config.range_db)
        columns = torch.stack(
            [loudness, level, onset, centroid, low_high, zcr, voicing], dim=1
        )
        values = mel.pool_to_video(columns, k0, first, stop, fps)
        return AudioFeatures(values, fps, self.feature_kind, ENERGY_FEATURES, first)


def _voicing(frames: torch.Tensor) -> torch.Tensor:
    """Periodicity ``[K]`` in 0..1 of frames ``[K, W]``: the autocorrelation peak, corrected for
    the window's own autocorrelation (Boersma 1993), over speaking-voice periods."""
    width = frames.shape[1]
    window = mel.hann(width)
    x = (frames - frames.mean(1, keepdim=True)) * window
    n_fft = 2 * width
    r = torch.fft.irfft(torch.fft.rfft(x, n=n_fft).abs().square(), n=n_fft)[:, :width]
    rw = torch.fft.irfft(torch.fft.rfft(window, n=n_fft).abs().square(), n=n_fft)[:width]
    norm = (r / (r[:, :1] + 1e-9)) / (rw / rw[0])
    return norm[:, _MIN_LAG:_MAX_LAG + 1].amax(1).clamp(0, 1)
