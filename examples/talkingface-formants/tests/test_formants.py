"""Tests of the formant encoder: talkingface's conformance mixin, plus synthetic vowels, closures
and fricatives that must land on the right visemes, and the plugin's wiring into talkingface."""

from __future__ import annotations

import importlib.metadata
import math

import numpy as np
import pytest
import torch
from talkingface.pipeline.contracts import Audio, AudioFeatures
from talkingface.pipeline.errors import ContractError, InputError
from talkingface.pipeline.registry import PluginManager
from talkingface.testing import AudioEncoderConformance, chunked, run_stream, synthetic_speech

from talkingface_formants import plugin
from talkingface_formants.encoder import SAMPLE_RATE, VISEMES, FormantVisemeEncoder

FPS = 25.0


def vowel(f1: float, f2: float, f3: float, seconds: float = 0.6, f0: float = 120.0) -> np.ndarray:
    """A pulse train at ``f0`` through three two-pole resonators (a steady synthetic vowel)."""
    n = int(seconds * SAMPLE_RATE)
    source = np.zeros(n)
    source[:: int(SAMPLE_RATE / f0)] = 1.0
    response = np.array([1.0])
    for freq in (f1, f2, f3):
        bandwidth = 60.0 + 0.05 * freq
        r = math.exp(-math.pi * bandwidth / SAMPLE_RATE)
        theta = 2 * math.pi * freq / SAMPLE_RATE
        k = np.arange(800)
        # Impulse response of 1 / (1 - 2r cos(theta) z^-1 + r^2 z^-2).
        response = np.convolve(response, r**k * np.sin((k + 1) * theta) / math.sin(theta))
    wave = np.convolve(source, response)[:n]
    return 0.3 * wave / np.abs(wave).max()


def silence(seconds: float) -> np.ndarray:
    return np.zeros(int(seconds * SAMPLE_RATE))


def as_audio(*parts: np.ndarray) -> Audio:
    return Audio(torch.from_numpy(np.concatenate(parts)).float(), SAMPLE_RATE)


def frames_in(features, start_s: float, stop_s: float) -> torch.Tensor:
    """Viseme posteriors ``[N, 15]`` of the video frames wholly inside ``[start_s, stop_s)``."""
    return features.values[math.ceil(start_s * FPS):math.floor(stop_s * FPS), :len(VISEMES)]


def column(name: str) -> int:
    return VISEMES.index(name)


@pytest.fixture(scope="module")
def encoder() -> FormantVisemeEncoder:
    stage = FormantVisemeEncoder()
    stage.ensure_loaded()
    return stage


class TestFormantConformance(AudioEncoderConformance):
    def make_stage(self):
        return FormantVisemeEncoder()


def test_same_contract_as_builtin_visemes():
    visemes = pytest.importorskip("talkingface.plugins.audio.visemes",
                                  reason="the built-in visemes encoder is not importable")
    builtin = visemes.VisemeEncoder
    assert FormantVisemeEncoder.feature_kind == builtin.feature_kind
    assert FormantVisemeEncoder.feature_names == tuple(builtin.feature_names)


@pytest.mark.parametrize("f0", [110.0, 220.0], ids=["low-voice", "high-voice"])
@pytest.mark.parametrize(
    ("formants", "expected"),
    [
        ((750, 1200, 2500), "aa"),
        ((300, 2300, 3000), "ih"),
        ((330, 850, 2300), "ou"),
        ((500, 1300, 1700), "RR"),
    ],
    ids=["open-a", "close-i", "rounded-u", "r-coloured"],
)
def test_synthetic_vowels_land_on_their_visemes(encoder, formants, expected, f0):
    feats = encoder.encode(as_audio(silence(0.2), vowel(*formants, f0=f0), silence(0.2)), FPS)
    steady = frames_in(feats, 0.35, 0.65)
    assert (steady.argmax(1) == column(expected)).all(), steady
    assert steady[:, column(expected)].mean() > 0.6


def test_posteriors_sum_to_one(encoder):
    feats = encoder.encode(as_audio(vowel(750, 1200, 2500), silence(0.1), vowel(300, 2300, 3000)),
                           FPS)
    posteriors = feats.values[:, :len(VISEMES)]
    torch.testing.assert_close(posteriors.sum(1), torch.ones(feats.num_frames))
    assert (posteriors >= 0).all()


def test_level_follows_loudness(encoder):
    feats = encoder.encode(as_audio(silence(0.4), vowel(750, 1200, 2500), silence(0.4)), FPS)
    level = feats.values[:, feats.names.index("level")]
    assert (level[: int(0.25 * FPS)] == 0).all()
    assert (level[int(0.5 * FPS):int(0.9 * FPS)] > 0.5).all() and (level <= 1).all()


def test_silence_is_sil(encoder):
    feats = encoder.encode(as_audio(silence(1.0)), FPS)
    assert (feats.values[:, column("sil")] > 0.99).all()


def test_short_dip_between_vowels_is_a_lip_closure(encoder):
    a = vowel(750, 1200, 2500, seconds=0.4)
    feats = encoder.encode(as_audio(a, silence(0.08), a, silence(0.8), a), FPS)
    dip = frames_in(feats, 0.41, 0.47)
    assert (dip.argmax(1) == column("PP")).all(), dip
    pause = frames_in(feats, 1.1, 1.5)
    assert (pause.argmax(1) == column("sil")).all(), pause


def test_hiss_is_a_sibilant(encoder):
    noise = torch.randn(int(0.5 * SAMPLE_RATE), generator=torch.Generator().manual_seed(0))
    hiss = torch.diff(noise, n=2).numpy()  # second difference: a steep high-frequency tilt
    feats = encoder.encode(as_audio(silence(0.2), 0.1 * hiss, silence(0.2)), FPS)
    steady = frames_in(feats, 0.3, 0.6)
    assert (steady.argmax(1) == column("SS")).all(), steady


def test_frames_depend_only_on_nearby_audio(encoder):
    """Locality: audio appended later changes only the frames within the encoder's lookahead."""
    a = vowel(750, 1200, 2500, seconds=1.0)
    alone = encoder.encode(as_audio(a), FPS)
    extended = encoder.encode(as_audio(a, vowel(300, 2300, 3000, seconds=1.0)), FPS)
    unaffected = math.floor((1.0 - encoder.lookahead_s) * FPS) - 1
    torch.testing.assert_close(extended.values[:unaffected], alone.values[:unaffected])


@pytest.mark.parametrize("fps", [22.1, 30.0, 60.0])
def test_batch_equals_streaming_at_other_frame_rates(encoder, fps):
    audio = synthetic_speech(1.2, SAMPLE_RATE, seed=1)
    batch = encoder.encode(audio, fps)
    outs = run_stream(encoder.stream(fps), chunked(audio, (777, 3000)))
    streamed = AudioFeatures.concat(outs)
    torch.testing.assert_close(streamed.values, batch.values, atol=1e-6, rtol=0)


def test_chunk_covers_only_requested_frames(encoder):
    clip = as_audio(vowel(750, 1200, 2500, seconds=1.0))
    whole = encoder.encode(clip, FPS)
    part = encoder.encode(clip.slice(2000, 16000), FPS, (10, 20))
    assert part.start_frame == 10
    torch.testing.assert_close(part.values, whole.values[10:20])


def test_bad_inputs_say_what_to_do(encoder):
    with pytest.raises(TypeError, match="Audio"):
        encoder.encode(np.zeros(16000), FPS)
    with pytest.raises(ContractError, match="resample"):
        encoder.encode(Audio(torch.zeros(8000), 8000), FPS)
    with pytest.raises(ContractError, match="fps"):
        encoder.encode(as_audio(silence(0.1)), 200.0)
    with pytest.raises(InputError, match="NaN"):
        encoder.encode(Audio(torch.full((1600,), float("nan")), SAMPLE_RATE), FPS)


def test_constructing_is_cheap_and_configurable():
    stage = FormantVisemeEncoder({"silence_db": -40.0, "formant_scale": 1.15})
    assert stage.config.silence_db == -40.0 and not stage.loaded


def _manager_with_plugin() -> PluginManager:
    pm = PluginManager(load_entry_points=False)
    pm.register(plugin, name="talkingface_formants.plugin")
    return pm


def test_plugin_registers_the_encoder():
    entry = _manager_with_plugin().registry.get("audio", "formants")
    assert issubclass(entry.cls, FormantVisemeEncoder)


def test_installed_entry_point_is_found():
    try:
        version = importlib.metadata.version("talkingface-formants")
    except importlib.metadata.PackageNotFoundError:
        pytest.skip("not installed: pip install -e examples/talkingface-formants")
    entry = PluginManager(load_entry_points=True).registry.get("audio", "formants")
    assert entry.origin == f"talkingface-formants {version} (formants)"


def test_default_pipeline_accepts_formants():
    from talkingface.api import Pipeline

    pm = _manager_with_plugin()
    for kind, name in (("motion", "rules"), ("render", "meshwarp")):
        if name not in pm.registry.names(kind):
            pytest.skip(f"the default preset's {kind} stage {name!r} is not registered yet")
    pipe = Pipeline.from_config("default", ["audio=formants"], plugin_manager=pm)
    assert pipe.graph.audio.name == "formants"
    assert pipe.description.startswith("formants>")
