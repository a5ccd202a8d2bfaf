"""Tests of the ``sphinx`` audio encoder: phone-to-viseme columns, the utterance cutter (the
same cuts in batch and streaming runs), repeatable decoding, and clear errors. The decoding
itself needs PocketSphinx (a dev dependency); quality on real speech is measured by
``benchmarks/lipsync.py --asr-phones``, not here."""

from __future__ import annotations

import math

import pytest
import torch

from talkingface.pipeline.contracts import VISEME_FEATURES, VISEMES, Audio, AudioFeatures
from talkingface.pipeline.errors import ConfigError, InputError
from talkingface.plugins.audio import mel
from talkingface.plugins.audio.sphinx import (
    ARPABET_VISEMES,
    SphinxConfig,
    SphinxEncoder,
)
from talkingface.testing import AudioEncoderConformance, chunked, run_stream, synthetic_speech

pytest.importorskip("pocketsphinx")

SR = 16000
FPS = 25.0


def bursts(pattern: list[tuple[float, bool]]) -> Audio:
    """Tone bursts (True) and silences (False) of the given lengths in seconds."""
    parts = []
    for seconds, loud in pattern:
        n = round(seconds * SR)
        t = torch.arange(n) / SR
        parts.append(0.3 * torch.sin(2 * math.pi * 220 * t) if loud else torch.zeros(n))
    return Audio(torch.cat(parts), SR)


class FakePhones:
    """Stands in for the decoder: records each utterance and answers with phones that depend
    only on its samples (so cuts can be checked and batch compared with streaming)."""

    def __init__(self) -> None:
        self.utterances: list[int] = []

    def __call__(self, samples: torch.Tensor) -> list[tuple[str, int, int]]:
        self.utterances.append(samples.shape[0])
        steps = samples.shape[0] // mel.HOP
        loud = [i for i in range(steps)
                if samples[i * mel.HOP:(i + 1) * mel.HOP].abs().max() > 0.1]
        if not loud:
            return []
        a, b = loud[0], loud[-1] + 1
        mid = (a + b) // 2
        return [("SIL", 0, a), ("M", a, 5), ("AA", a + 5, mid - a - 5), ("IY", mid, b - mid)]


class TestSphinxConformance(AudioEncoderConformance):
    def make_stage(self):
        # short utterances, so a stream emits within the first second
        return SphinxEncoder(SphinxConfig(min_segment_s=0.4, pause_s=0.1, max_segment_s=0.9))


def fake_encoder(monkeypatch, **config) -> tuple[SphinxEncoder, FakePhones]:
    enc = SphinxEncoder(SphinxConfig(**config))
    fake = FakePhones()
    monkeypatch.setattr(enc, "phones", fake)
    enc.loaded = True
    return enc, fake


def test_phones_become_viseme_columns(monkeypatch):
    enc, _ = fake_encoder(monkeypatch)
    audio = bursts([(0.4, False), (1.0, True), (0.4, False)])
    feats = enc.encode(audio, FPS)
    assert feats.names == VISEME_FEATURES and feats.kind == "visemes"
    assert feats.num_frames == 45
    post = feats.values[:, : len(VISEMES)]
    torch.testing.assert_close(post.sum(1), torch.ones(feats.num_frames))
    top = [VISEMES[i] for i in post.argmax(1)]
    # silence, then the lips close (M: 50 ms from 0.4 s), then aa, then ih, then silence
    assert top[:9] == ["sil"] * 9
    assert post[10, VISEMES.index("PP")] > 0.2
    assert top[15:20] == ["aa"] * 5 and top[30:35] == ["ih"] * 5
    assert top[-5:] == ["sil"] * 5
    level = feats.values[:, -1]
    assert level[20] > 0.5 and level[2] == 0


def test_every_dictionary_phone_has_a_viseme():
    import os

    from pocketsphinx import get_model_path

    used = set()
    with open(os.path.join(get_model_path(), "en-us", "cmudict-en-us.dict"),
              encoding="utf-8") as f:
        for line in f:
            used.update(line.split()[1:])
    assert used == set(ARPABET_VISEMES)
    assert set(ARPABET_VISEMES.values()) <= set(VISEMES)


def test_utterances_are_cut_in_pauses(monkeypatch):
    enc, fake = fake_encoder(monkeypatch, min_segment_s=1.0, pause_s=0.3, max_segment_s=4.0)
    # 1.5 s of sound, a 0.5 s pause (cut), 0.5 s of sound, a 0.2 s pause (too short),
    # then 5 s of sound without a pause: cut at the 4 s limit
    audio = bursts([(1.5, True), (0.5, False), (0.5, True), (0.2, False), (5.0, True)])
    enc.encode(audio, FPS)
    seconds = [n / SR for n in fake.utterances]
    assert len(seconds) == 3
    # the first cut lies in the middle of the pause's detected part
    assert 1.6 <= seconds[0] <= 2.0
    assert seconds[1] == pytest.approx(4.0, abs=0.01)
    assert sum(seconds) == pytest.approx(audio.num_samples / SR, abs=0.02)


@pytest.mark.parametrize("sizes", [(1600,), (777, 4000), (160, 321, 16000)])
def test_streaming_equals_batch_across_cuts(monkeypatch, sizes):
    pattern = [(1.3, True), (0.6, False), (2.2, True), (0.4, False), (0.7, True)]
    audio = bursts(pattern)
    enc, _ = fake_encoder(monkeypatch, min_segment_s=0.5, pause_s=0.3, max_segment_s=2.0)
    batch = enc.encode(audio, FPS)
    outs = run_stream(enc.stream(FPS), chunked(audio, sizes))
    streamed = AudioFeatures.concat(outs)
    assert streamed.num_frames == batch.num_frames
    assert torch.equal(streamed.values, batch.values)
    # frames come out once their utterance ends, not only at the end of the stream
    assert len([o for o in outs if o.num_frames]) >= 3


def test_a_transcript_makes_one_utterance(monkeypatch):
    enc, fake = fake_encoder(monkeypatch, text="hello world")
    enc.encode(bursts([(1.5, True), (0.8, False), (1.5, True)]), FPS)
    assert len(fake.utterances) == 1
    assert enc.lookahead_s > 60  # a stream waits for the end


def test_decoding_repeats_whatever_came_before():
    enc = SphinxEncoder()
    speech = synthetic_speech(2.5, SR)
    first = enc.phones(speech.samples)
    enc.phones(synthetic_speech(3.0, SR, seed=5).samples)
    assert enc.phones(speech.samples) == first


def test_silence_is_the_rest_shape():
    feats = SphinxEncoder().encode(Audio(torch.zeros(SR), SR), FPS)
    assert torch.equal(feats.values[:, 0], torch.ones(feats.num_frames))
    assert torch.equal(feats.values[:, -1], torch.zeros(feats.num_frames))


@pytest.mark.parametrize("config, match", [
    (dict(pause_s=0), "pause_s"),
    (dict(min_segment_s=3.0, max_segment_s=2.0), "max_segment_s"),
    (dict(quiet_level=1.5), "quiet_level"),
])
def test_bad_config_is_a_config_error(config, match):
    with pytest.raises(ConfigError, match=match):
        SphinxEncoder(SphinxConfig(**config))


def test_unknown_transcript_words_are_named():
    enc = SphinxEncoder(SphinxConfig(text="hello qzxwv world"))
    with pytest.raises(InputError, match="qzxwv"):
        enc.load()


def test_missing_pocketsphinx_says_how_to_install(monkeypatch):
    import builtins

    real_import = builtins.__import__

    def no_sphinx(name, *args, **kwargs):
        if name == "pocketsphinx":
            raise ImportError(name)
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_sphinx)
    with pytest.raises(ConfigError, match=r"talkingface\[sphinx\]"):
        SphinxEncoder().load()
