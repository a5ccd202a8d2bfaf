"""Tests of the ``visemes`` audio encoder: conformance with the shipped weights, the
checkpoint loader on small random checkpoints, and known answers."""

from __future__ import annotations

import pytest
import torch

from talkingface.pipeline.contracts import VISEME_FEATURES, VISEMES, Audio
from talkingface.pipeline.errors import ContractError, InputError
from talkingface.plugins.audio.visemes import (
    CONTEXT_FRAMES,
    DEFAULT_WEIGHTS,
    LOOKAHEAD_FRAMES,
    VisemeEncoder,
    VisemeNet,
)
from talkingface.testing import AudioEncoderConformance, synthetic_speech

SR = 16000


class TestVisemesConformance(AudioEncoderConformance):
    def make_stage(self):
        return VisemeEncoder()


def test_shipped_weights_are_small():
    assert DEFAULT_WEIGHTS.is_file()
    assert DEFAULT_WEIGHTS.stat().st_size < 4_000_000


def test_posteriors_are_a_distribution_and_level_is_last():
    feats = VisemeEncoder().encode(synthetic_speech(2.0), 25.0)
    assert feats.names == VISEME_FEATURES
    post = feats.values[:, : len(VISEMES)]
    torch.testing.assert_close(post.sum(1), torch.ones(feats.num_frames))
    assert (post >= 0).all()
    level = feats.values[:, -1]
    assert level.min() >= 0 and level.max() <= 1 and level.max() > 0.5


def test_silence_is_sil():
    feats = VisemeEncoder().encode(Audio(torch.zeros(SR), SR), 25.0)
    assert (feats.values[:, VISEMES.index("sil")] > 0.5).all()
    assert (feats.values[:, -1] == 0).all()


def write_checkpoint(path, visemes=VISEMES, channels=8,
                     window=(CONTEXT_FRAMES, LOOKAHEAD_FRAMES)):
    net = VisemeNet(channels)
    torch.save({"state_dict": net.state_dict(), "visemes": list(visemes), "channels": channels,
                "context_frames": window[0], "lookahead_frames": window[1]}, path)


def test_loads_a_checkpoint_in_the_training_format(tmp_path):
    path = tmp_path / "tiny.pt"
    write_checkpoint(path)
    enc = VisemeEncoder(VisemeEncoder.Config(weights=str(path)))
    enc.load()
    feats = enc.encode(synthetic_speech(1.0), 25.0)
    assert feats.values.shape == (25, len(VISEME_FEATURES))


def test_missing_or_mismatched_weights_say_what_to_do(tmp_path):
    with pytest.raises(InputError, match="train_viseme_model"):
        VisemeEncoder(VisemeEncoder.Config(weights=str(tmp_path / "nope.pt"))).load()
    path = tmp_path / "old.pt"
    write_checkpoint(path, visemes=("sil", "aa"))
    with pytest.raises(InputError, match="retrain"):
        VisemeEncoder(VisemeEncoder.Config(weights=str(path))).load()
    shifted = tmp_path / "shifted.pt"  # same net, but it labels another frame of its window
    write_checkpoint(shifted, window=(CONTEXT_FRAMES + 2, LOOKAHEAD_FRAMES - 2))
    with pytest.raises(InputError, match="lookahead.*retrain"):
        VisemeEncoder(VisemeEncoder.Config(weights=str(shifted))).load()


def test_network_sees_only_its_declared_window():
    # Changing audio outside frame 20's window must not change frame 20.
    enc = VisemeEncoder()
    audio = synthetic_speech(2.0)
    base = enc.encode(audio, 25.0).values[20]
    t0 = int((20 / 25.0 - enc.context_s) * SR) - 1
    t1 = int((21 / 25.0 + enc.lookahead_s) * SR) + 1
    noisy = audio.samples.clone()
    noisy[:t0] = 0.3
    noisy[t1:] = -0.3
    changed = enc.encode(Audio(noisy, SR), 25.0).values[20]
    torch.testing.assert_close(changed, base, atol=1e-5, rtol=1e-4)


def test_declared_lookahead_keeps_streaming_latency_low():
    assert VisemeEncoder.lookahead_s <= 0.1


def test_wrong_sample_rate_says_what_to_do():
    with pytest.raises(ContractError, match="expected 16000 Hz"):
        VisemeEncoder().encode(Audio(torch.zeros(22050), 22050), 25.0)
