"""Tests of the ``energy`` audio encoder: the conformance suite plus known answers."""

from __future__ import annotations

import math

import pytest
import torch

from talkingface.pipeline.contracts import ENERGY_FEATURES, Audio
from talkingface.pipeline.errors import ContractError
from talkingface.plugins.audio.energy import EnergyEncoder
from talkingface.testing import AudioEncoderConformance, run_stream, synthetic_speech

SR = 16000


def tone(seconds: float, freq: float, amplitude: float = 0.5) -> torch.Tensor:
    t = torch.arange(int(seconds * SR)) / SR
    return (amplitude * torch.sin(2 * math.pi * freq * t)).float()


def column(feats, name: str) -> torch.Tensor:
    return feats.values[:, ENERGY_FEATURES.index(name)]


class TestEnergyConformance(AudioEncoderConformance):
    def make_stage(self):
        return EnergyEncoder()


def test_loudness_has_a_fixed_reference():
    enc = EnergyEncoder()
    loud = enc.encode(Audio(tone(1.0, 200, 0.5), SR), 25.0)
    quiet = enc.encode(Audio(tone(1.0, 200, 0.05), SR), 25.0)
    # A full-scale sine is -3 dB; amplitude 0.5 is -9 dB; 10x quieter is 20 dB lower.
    assert column(loud, "loudness_db")[5:20].mean().item() == pytest.approx(-9.0, abs=0.3)
    diff = column(loud, "loudness_db")[5:20] - column(quiet, "loudness_db")[5:20]
    assert diff.mean().item() == pytest.approx(20.0, abs=0.3)


def test_silence_reads_as_silence():
    feats = EnergyEncoder().encode(Audio(torch.zeros(SR), SR), 25.0)
    assert (column(feats, "level") == 0).all()
    assert (column(feats, "voicing") == 0).all() and (column(feats, "onset") == 0).all()


def test_spectral_shape_separates_hum_from_hiss():
    enc = EnergyEncoder()
    hum = enc.encode(Audio(tone(1.0, 150), SR), 25.0)
    hiss = enc.encode(Audio(torch.randn(SR, generator=torch.Generator().manual_seed(0)) * 0.2,
                            SR), 25.0)
    middle = slice(3, 22)

    def span(feats, name):
        values = column(feats, name)[middle]
        return values.min().item(), values.max().item()

    assert span(hum, "voicing")[0] > 0.9 and span(hiss, "voicing")[1] < 0.5
    assert span(hum, "centroid_khz")[1] < 1.0 < span(hiss, "centroid_khz")[0]
    assert span(hum, "low_high_db")[0] > 20 and span(hiss, "low_high_db")[1] < 0
    assert span(hum, "zcr")[1] < 0.05 and span(hiss, "zcr")[0] > 0.3


def test_onset_peaks_where_sound_starts():
    samples = torch.cat([torch.zeros(SR // 2), tone(0.5, 200)])
    onset = column(EnergyEncoder().encode(Audio(samples, SR), 25.0), "onset")
    assert onset.argmax().item() in (12, 13)  # the tone starts at 0.5 s = frame 12.5


def test_frames_and_offset_select_a_window():
    enc = EnergyEncoder()
    audio = synthetic_speech(2.0)
    whole = enc.encode(audio, 25.0)
    start = 8000  # 0.5 s in, well past the context of frame 20
    part = enc.encode(audio.slice(start, audio.num_samples), 25.0, (20, 40))
    assert part.start_frame == 20
    torch.testing.assert_close(part.values, whole.values[20:40], atol=1e-5, rtol=1e-4)


@pytest.mark.parametrize("fps", [22.1, 30.0])
def test_odd_frame_rates_stream_exactly(fps):
    enc = EnergyEncoder()
    audio = synthetic_speech(1.5)
    batch = enc.encode(audio, fps)
    outs = run_stream(enc.stream(fps), list(audio.chunks(1111)))
    streamed = torch.cat([o.values for o in outs])
    torch.testing.assert_close(streamed, batch.values, atol=1e-5, rtol=1e-4)


def test_declared_lookahead_keeps_streaming_latency_low():
    assert EnergyEncoder.lookahead_s <= 0.1


def test_wrong_sample_rate_says_what_to_do():
    with pytest.raises(ContractError, match="expected 16000 Hz"):
        EnergyEncoder().encode(Audio(torch.zeros(44100), 44100), 25.0)


def test_rejects_a_batch_of_clips():
    with pytest.raises(ContractError, match="one clip at a time"):
        EnergyEncoder().encode(Audio(torch.zeros(2, SR), SR), 25.0)
