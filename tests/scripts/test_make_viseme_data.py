"""The viseme training data: audio at the right speed, labels on the right frames.

The labels test needs the Debian package espeak-ng (dev-time only) and skips without it.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "scripts"))
mv = pytest.importorskip("make_viseme_data")


def espeak():
    try:
        return mv.Espeak()
    except OSError:
        pytest.skip("espeak-ng is not installed (apt-get install espeak-ng)")


@pytest.mark.parametrize("speed", [1.0, 0.9, 1.1])
def test_resampling_keeps_espeaks_tempo_and_pitch(speed):
    # Resampling the 22050 Hz synthesis as if it were 44.1 kHz once trained the model on
    # double-speed, octave-up speech. One second of a 300 Hz tone must stay one second (/speed)
    # of a 300 Hz tone (*speed) at 16 kHz.
    t = np.arange(mv.ESPEAK_RATE) / mv.ESPEAK_RATE
    audio, scale = mv.to_16k(np.sin(2 * np.pi * 300 * t).astype(np.float32), speed)
    assert len(audio) == pytest.approx(16000 / speed, rel=0.01)
    assert scale == pytest.approx(16000 / 22050 / speed, rel=0.01)
    spectrum = np.abs(np.fft.rfft(audio))
    peak_hz = spectrum.argmax() * 16000 / len(audio)
    assert peak_hz == pytest.approx(300 * speed, rel=0.02)


def test_labels_follow_the_sound():
    # Every p/b/m label must sit on quieter frames than the vowels (closed lips damp the
    # sound), which only holds when labels and audio share one time base.
    audio, events = espeak().say("Bob, map my maple palm.", "en-us", 150, 50, 50)
    x, scale = mv.to_16k(audio)
    logmel = mv.log_mel(x)
    level = 10 * logmel.max(axis=1)
    labels = mv.frame_labels(events, logmel.shape[0], scale, level - level.max())
    pp = mv.VISEMES.index("PP")
    vowels = np.isin(labels, [mv.VISEMES.index(v) for v in ("aa", "E", "ih", "oh", "ou")])
    assert (labels == pp).sum() > 10
    assert np.median(level[labels == pp]) < np.median(level[vowels]) - 5
