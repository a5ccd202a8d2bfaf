"""Tests of the ``rules`` motion generator: conformance for both feature kinds, then behaviour
with known answers on hand-made features."""

from __future__ import annotations

import math

import pytest
import torch

from talkingface.pipeline.contracts import (
    ENERGY_FEATURES,
    VISEME_FEATURES,
    VISEMES,
    AudioFeatures,
    Controls,
    Motion,
)
from talkingface.pipeline.errors import ConfigError, ContractError
from talkingface.plugins.audio.energy import EnergyEncoder
from talkingface.plugins.motion.rules import RulesConfig, RulesMotion
from talkingface.testing import FPS, MotionGeneratorConformance, synthetic_speech

QUIETER = {"PP": 0.3, "FF": 0.2, "TH": 0.2, "DD": 0.2, "kk": 0.2, "SS": 0.15, "CH": 0.15,
           "nn": 0.15, "RR": 0.1}
"""How much lower the speech level of a consonant is than the vowels' (0.3 = 13.5 dB): lips or
tongue constrict the sound, as in real speech."""


def viseme_features(sequence: list[tuple[str, int]], level: float = 0.8,
                    quieter: dict[str, float] = QUIETER) -> AudioFeatures:
    """One-hot viseme posteriors: ``[(viseme, frames), ...]``; the speech level is ``level``
    for vowels, lower by ``quieter[viseme]`` for consonants, 0 for silence."""
    rows = []
    for viseme, frames in sequence:
        row = torch.zeros(len(VISEME_FEATURES))
        row[VISEMES.index(viseme)] = 1.0
        row[-1] = 0.0 if viseme == "sil" else level - quieter.get(viseme, 0.0)
        rows += [row] * frames
    return AudioFeatures(torch.stack(rows), FPS, "visemes", VISEME_FEATURES)


def silent_energy(frames: int) -> AudioFeatures:
    values = torch.zeros(frames, len(ENERGY_FEATURES))
    values[:, ENERGY_FEATURES.index("loudness_db")] = -100.0
    return AudioFeatures(values, FPS, "energy", ENERGY_FEATURES)


def babble(seconds: float) -> AudioFeatures:
    """Syllable-like viseme sequence with pauses (deterministic)."""
    cycle = [("PP", 2), ("aa", 5), ("DD", 2), ("E", 4), ("SS", 3), ("ou", 5), ("sil", 4),
             ("kk", 2), ("ih", 4), ("nn", 2), ("oh", 5), ("sil", 12)]
    seq, total = [], 0
    while total < seconds * FPS:
        for item in cycle:
            seq.append(item)
            total += item[1]
    return viseme_features(seq).slice(0, int(seconds * FPS))


def col(motion, name):
    return motion.get(name)


class TestRulesOnEnergy(MotionGeneratorConformance):
    def make_stage(self):
        return RulesMotion()

    def make_features(self, stage):
        return EnergyEncoder().encode(synthetic_speech(3.0), FPS)


class TestRulesOnVisemes(MotionGeneratorConformance):
    def make_stage(self):
        return RulesMotion()

    def make_features(self, stage):
        return babble(4.0)


def test_silence_keeps_the_mouth_closed_and_still():
    gen = RulesMotion()
    for feats in (silent_energy(100), viseme_features([("sil", 100)])):
        motion = gen.generate(feats, Controls(seed=1))
        mouth = motion.expression[:, :4]
        assert mouth.abs().max() < 1e-6


def test_a_silent_listener_holds_the_head_nearly_still():
    gen = RulesMotion()
    silent = gen.generate(viseme_features([("sil", 250)]), Controls(seed=1))
    talking = gen.generate(babble(10.0), Controls(seed=1))
    silent_deg = torch.rad2deg(silent.pose[:, :3]).abs().max()
    talking_deg = torch.rad2deg(talking.pose[:, :3]).abs().max()
    assert silent_deg < 1.5, f"head moved {silent_deg:.2f} deg in silence"
    assert talking_deg > 3 * silent_deg


def test_bilabial_presses_the_lips_and_closes_the_jaw():
    # A 120 ms p/b/m between open vowels: the lips press for all of it (anticipation starts
    # the closure early) and the jaw comes up.
    feats = viseme_features([("aa", 20), ("PP", 3), ("aa", 20)])
    motion = RulesMotion().generate(feats, Controls(seed=0))
    assert col(motion, "lip_press")[20:23].min() > 0.8
    assert col(motion, "jaw_open")[21:23].max() < 0.15
    assert col(motion, "lip_press")[10:18].max() < 0.05


def test_untrusted_closures_skip_a_bilabial_call_as_loud_as_a_vowel():
    # Closed lips damp the sound; without trust_closures a p/b/m posterior on a sound as loud
    # as the vowels around it is taken for a recognition error and does not shut the mouth.
    feats = viseme_features([("aa", 20), ("PP", 10), ("aa", 20)], quieter={})
    motion = RulesMotion(RulesConfig(trust_closures=False)).generate(feats, Controls(seed=0))
    assert col(motion, "lip_press").max() < 0.05
    assert col(motion, "jaw_open")[23:30].min() > 0.3


def test_trusted_closures_press_even_on_a_loud_bilabial():
    # a confident p/b/m closes the lips, whatever its loudness
    feats = viseme_features([("aa", 20), ("PP", 10), ("aa", 20)], quieter={})
    motion = RulesMotion().generate(feats, Controls(seed=0))  # trust_closures by default
    assert col(motion, "lip_press")[21:30].min() > 0.8


def test_jaw_loudness_sets_what_the_jaw_follows():
    # the same open vowel, loud then at a third of the level (after a pause, so the running
    # peak is set by the loud one)
    seq = [("sil", 5), ("aa", 15), ("sil", 5), ("aa", 15)]
    feats = viseme_features(seq)
    feats.values[25:40, -1] *= 0.4
    jaws = {}
    for w in (0.0, 1.0):
        motion = RulesMotion(RulesConfig(jaw_loudness=w)).generate(feats, Controls(seed=0))
        jaw = col(motion, "jaw_open")
        jaws[w] = (float(jaw[12:18].mean()), float(jaw[32:38].mean()))
    loud, quiet = jaws[1.0]
    assert quiet < 0.5 * loud  # follows loudness
    loud, quiet = jaws[0.0]
    assert quiet == pytest.approx(loud, rel=0.05)  # follows the sound: an open vowel
    with pytest.raises(ConfigError, match="jaw_loudness"):
        RulesMotion(RulesConfig(jaw_loudness=1.5))


def test_a_vague_bilabial_call_relaxes_instead_of_pressing():
    feats = viseme_features([("aa", 20), ("PP", 10), ("aa", 20)])
    pp, sil = VISEMES.index("PP"), VISEMES.index("sil")
    feats.values[20:30, pp] = 0.25
    feats.values[20:30, sil] = 0.75
    motion = RulesMotion().generate(feats, Controls(seed=0))
    assert col(motion, "lip_press").max() < 0.05


def test_open_vowel_opens_the_jaw_and_rounded_vowel_rounds():
    motion = RulesMotion().generate(viseme_features([("sil", 10), ("aa", 15), ("ou", 15)]),
                                    Controls(seed=0))
    vowel_a, vowel_u = slice(16, 22), slice(31, 38)  # settled, before the next anticipation
    assert col(motion, "jaw_open")[vowel_a].min() > 0.5
    assert col(motion, "mouth_round")[vowel_u].min() > 0.6
    assert col(motion, "mouth_round")[vowel_a].max() < 0.1


def test_mouth_anticipates_and_never_snaps():
    motion = RulesMotion().generate(viseme_features([("sil", 10), ("aa", 20)]), Controls(seed=0))
    jaw = col(motion, "jaw_open")
    assert jaw[9] > 0.05  # starts opening before the vowel (lookahead)
    assert (jaw[1:] - jaw[:-1]).abs().max() < 0.35  # no one-frame jumps


def test_energy_features_drive_the_jaw_with_loudness():
    motion = RulesMotion().generate(EnergyEncoder().encode(synthetic_speech(3.0), FPS), Controls())
    jaw = col(motion, "jaw_open")
    assert jaw.max() > 0.4 and jaw.min() < 0.05


def test_blink_rate_is_natural_and_blinks_are_short():
    motion = RulesMotion().generate(babble(60.0), Controls(seed=3, blink_rate=17.0))
    blink = col(motion, "blink_l")
    starts = ((blink[1:] > 0) & (blink[:-1] == 0)).nonzero().flatten()
    assert 10 <= len(starts) <= 30
    closed = (blink > 0).float()
    lengths = []
    run = 0
    for value in closed.tolist() + [0.0]:
        if value:
            run += 1
        elif run:
            lengths.append(run / FPS)
            run = 0
    assert max(lengths) <= 0.4 and blink.max() > 0.9
    assert torch.equal(blink, col(motion, "blink_r"))


def test_blink_rate_control_and_seed():
    feats = babble(60.0)
    gen = RulesMotion()
    none = gen.generate(feats, Controls(blink_rate=0.0))
    assert col(none, "blink_l").max() == 0
    a = col(gen.generate(feats, Controls(seed=1)), "blink_l")
    b = col(gen.generate(feats, Controls(seed=2)), "blink_l")
    assert not torch.equal(a, b)


def test_still_head_keeps_the_pose_constant():
    motion = RulesMotion().generate(babble(10.0), Controls(still_head=True, head_distance=1.3))
    assert torch.equal(motion.pose, motion.pose[:1].expand_as(motion.pose))
    assert motion.pose[0, 5].item() == pytest.approx(1.3)


def test_head_moves_smoothly_with_natural_amplitude():
    motion = RulesMotion().generate(babble(20.0), Controls(seed=5))
    angles = torch.rad2deg(motion.pose[:, :3])
    delta = (angles[1:] - angles[:-1]).abs().mean().item()
    assert 0.1 < delta < 0.45  # degrees per frame at 25 fps; real videos: 0.20-0.39
    jerk = (angles[2:] - 2 * angles[1:-1] + angles[:-2]).abs()
    assert jerk.mean() < 0.15 and jerk.max() < 0.8  # no frame-to-frame jitter
    lively = RulesMotion().generate(babble(20.0), Controls(seed=5, head_motion=2.0))
    assert lively.pose[:, 0].std() > 1.5 * motion.pose[:, 0].std()


def test_head_distance_sets_the_scale_column():
    motion = RulesMotion().generate(babble(4.0), Controls(head_distance=0.8))
    assert torch.allclose(motion.pose[:, 5], torch.tensor(0.8))


@pytest.mark.parametrize(
    ("emotion", "name"),
    [("happy", "smile"), ("sad", "frown"), ("surprised", "brow_up"), ("angry", "brow_down")],
)
def test_emotion_shows_in_the_face(emotion, name):
    gen = RulesMotion()
    feats = babble(4.0)
    neutral = gen.generate(feats, Controls())
    moved = gen.generate(feats, Controls(emotion=emotion, emotion_strength=0.8))
    assert col(moved, name).mean() > col(neutral, name).mean() + 0.2


def test_fixed_gaze_is_held_and_natural_gaze_fixates():
    gen = RulesMotion()
    fixed = gen.generate(babble(10.0), Controls(gaze=(0.3, -0.2)))
    assert torch.allclose(col(fixed, "gaze_x"), torch.tensor(0.3))
    assert torch.allclose(col(fixed, "gaze_y"), torch.tensor(-0.2))
    natural = col(gen.generate(babble(20.0), Controls(seed=4)), "gaze_x")
    moving = ((natural[1:] - natural[:-1]).abs() > 1e-3).float().mean()
    assert 0 < moving < 0.4  # mostly fixations, a few saccades
    assert natural.abs().max() <= 0.4


def test_streaming_emits_after_the_lookahead():
    gen = RulesMotion()
    proc = gen.stream(Controls())
    feats = babble(2.0)
    first = proc.push(feats.slice(0, 5))
    assert first is not None and first.num_frames == 5 - gen.lookahead_frames
    assert first.start_frame == 0


def test_rejects_bad_controls_and_features():
    gen = RulesMotion()
    with pytest.raises(TypeError):
        gen.generate(babble(1.0), {"emotion": "happy"})
    with pytest.raises(ContractError):
        Controls(emotion="bored")
    with pytest.raises(ContractError, match="accepts energy or visemes"):
        gen.generate(AudioFeatures(torch.zeros(5, 3), FPS, "mel80"), Controls())
    with pytest.raises(ContractError, match="need the columns"):
        gen.generate(AudioFeatures(torch.zeros(5, 3), FPS, "energy"), Controls())


def test_declares_what_the_renderer_needs():
    # One frame (40 ms) of anticipation by default: it keeps streaming start latency < 200 ms.
    assert math.isclose(RulesMotion.lookahead_frames / FPS, 0.04)
    assert RulesMotion().lookahead_frames == 1
    two = RulesMotion(RulesMotion.Config(anticipation_frames=2))
    assert two.lookahead_frames == 2
    assert RulesMotion().declarations()["accepts"] == ["energy", "visemes"]


def _streamed(controls: Controls, features: AudioFeatures, changes: dict[int, Controls]):
    """Motion of ``features`` streamed 10 frames a chunk, with ``changes[frame]`` handed to
    ``set_controls`` before the chunk that starts at that frame."""
    proc = RulesMotion().stream(controls)
    parts = []
    for start in range(0, features.num_frames, 10):
        if start in changes:
            proc.set_controls(changes[start])
        parts.append(proc.push(features.slice(start, start + 10)))
    parts.append(proc.flush())
    return Motion.concat([p for p in parts if p is not None])


def test_the_same_controls_set_mid_stream_change_nothing():
    features = babble(4.0)
    controls = Controls(emotion="sad", gaze=(0.2, -0.1), seed=3)
    batch = RulesMotion().generate(features, controls)
    streamed = _streamed(controls, features, {40: controls, 60: Controls(**vars(controls))})
    assert torch.equal(streamed.pose, batch.pose)
    assert torch.equal(streamed.expression, batch.expression)


def test_a_live_emotion_eases_in_from_the_next_chunk():
    features = babble(4.0)
    motion = _streamed(Controls(), features, {50: Controls(emotion="happy")})
    smile = col(motion, "smile")
    first = 50 - RulesConfig.anticipation_frames  # the first frame emitted after the change
    assert torch.all(smile[:first] == 0)
    assert 0 < smile[first] < 0.2  # no jump on the first frame of the change ...
    assert torch.all(torch.diff(smile[first:first + 10]) > 0)  # ... it eases in
    assert smile[first + 20:].min() > 0.68  # and holds happy's 0.7 within ~0.8 s


def test_live_head_motion_and_gaze_take_effect():
    features = babble(6.0)
    controls = Controls(head_motion=2.0)
    still = Controls(head_motion=0.0, gaze=(0.5, 0.3))
    motion = _streamed(controls, features, {60: still})
    yaw = motion.pose[:, 0]
    assert yaw[:60].abs().max() > 0.01
    assert yaw[100:].abs().max() < 0.1 * yaw[:60].abs().max()
    gaze = torch.stack([col(motion, "gaze_x"), col(motion, "gaze_y")], dim=1)
    assert torch.allclose(gaze[70:], torch.tensor([0.5, 0.3]), atol=1e-3)
    assert (gaze[61] - gaze[60]).abs().max() < 0.5  # a saccade, not a teleport


def test_set_controls_refuses_another_seed_and_other_types():
    proc = RulesMotion().stream(Controls(seed=1))
    with pytest.raises(ContractError, match="seed is fixed"):
        proc.set_controls(Controls(seed=2))
    with pytest.raises(TypeError, match="must be talkingface Controls"):
        proc.set_controls({"emotion": "happy"})
