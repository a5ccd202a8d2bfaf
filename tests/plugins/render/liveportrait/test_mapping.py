"""Tests of the motion -> driving keypoints mapping of the ``liveportrait`` renderer (no networks:
a made-up portrait's keypoint info; the rotation itself is tested in test_keypoints)."""

from __future__ import annotations

import math

import pytest
import torch

from talkingface.pipeline.contracts import LIVEPORTRAIT_LATENT, LIVEPORTRAIT_SPACE, Motion
from talkingface.pipeline.errors import ContractError
from talkingface.plugins.render.liveportrait.mapping import (
    EXPRESSION_DIRECTIONS,
    LATENT_WIDTH,
    MappingGains,
    SourceMotion,
    expression_offsets,
    latent_keypoints,
    place_keypoints,
    rest_ratios,
    retarget_ratios,
    semantic_keypoints,
    source_latent,
)
from talkingface.testing import neutral_motion


def make_source(seed: int = 0) -> SourceMotion:
    g = torch.Generator().manual_seed(seed)
    return SourceMotion(
        kp=torch.randn(1, 21, 3, generator=g) * 0.3,
        exp=torch.randn(1, 21, 3, generator=g) * 0.02,
        angles=torch.tensor([[4.0, -7.0, 2.0]]),
        t=torch.tensor([[0.01, -0.02, 0.03]]),
        scale=torch.tensor([[1.4]]),
        eye_ratio=torch.tensor([[0.32, 0.28]]),
        lip_ratio=torch.tensor([[0.05]]),
        face_height=0.8,
    )


def test_neutral_motion_gives_the_portraits_own_keypoints():
    source = make_source()
    kp_source = place_keypoints(source.kp, source.angles, source.exp, source.t, source.scale)
    kp = semantic_keypoints(neutral_motion(3), source, MappingGains())
    assert kp.shape == (3, 21, 3)
    torch.testing.assert_close(kp, kp_source.expand(3, -1, -1), atol=1e-6, rtol=0)
    # ... and the portrait's own ratios, which the renderer's rest deltas cancel exactly.
    lip, eye = retarget_ratios(neutral_motion(3), source, MappingGains())
    lip_rest, eye_rest = rest_ratios(source)
    assert torch.equal(lip, lip_rest.expand(3, -1)) and torch.equal(eye, eye_rest.expand(3, -1))


def test_pose_rotates_scales_and_shifts_relative_to_the_portrait():
    source = make_source()
    gains = MappingGains()
    base = semantic_keypoints(neutral_motion(1), source, gains)
    turned = semantic_keypoints(neutral_motion(1, roll=math.radians(10)), source, gains)
    # Our roll > 0 is counterclockwise as seen: upstream's roll goes 10 degrees the other way.
    expected = place_keypoints(source.kp, source.angles + torch.tensor([[0.0, 0.0, -10.0]]),
                               source.exp, source.t, source.scale)  # fmt: skip
    torch.testing.assert_close(turned, expected, atol=1e-6, rtol=0)
    closer = semantic_keypoints(neutral_motion(1, scale=1.25), source, gains)
    shift = source.t[:, None, :].clone()
    shift[..., 2] = 0
    torch.testing.assert_close(closer - shift, (base - shift) * 1.25, atol=1e-6, rtol=0)
    moved = semantic_keypoints(neutral_motion(1, tx=0.1, ty=-0.05), source, gains)
    offset = (moved - base)[0]
    torch.testing.assert_close(offset[:, 0], torch.full((21,), 0.08), atol=1e-6, rtol=0)
    torch.testing.assert_close(offset[:, 1], torch.full((21,), -0.04), atol=1e-6, rtol=0)
    assert offset[:, 2].abs().max() == 0


def test_jaw_opens_and_press_closes_the_lip_target():
    source = make_source()
    gains = MappingGains(lip_open_ratio=0.6)

    def lip_target(**values):
        return retarget_ratios(neutral_motion(1, **values), source, gains)[0][0, 1].item()

    rest = source.lip_ratio.item()
    assert lip_target() == pytest.approx(rest)
    assert lip_target(jaw_open=0.5) == pytest.approx(rest + 0.3)
    assert lip_target(jaw_open=1.0) > lip_target(jaw_open=0.5) > rest
    # p/b/m: the press closes the lips, even a portrait's parted ones, even with the jaw open.
    assert lip_target(lip_press=1.0) == 0.0
    assert lip_target(jaw_open=0.3, lip_press=1.0) == 0.0
    assert lip_target(jaw_open=0.3, lip_press=0.5) < lip_target(jaw_open=0.3)
    lip, _ = retarget_ratios(neutral_motion(1), source, gains)
    assert lip[0, 0].item() == pytest.approx(rest)  # the source ratio comes first


def test_blinks_close_the_eye_target():
    source = make_source()
    gains = MappingGains()

    def eye(**values):
        return retarget_ratios(neutral_motion(1, **values), source, gains)[1][0]

    open_ratio = source.eye_ratio.mean().item()
    assert eye()[2].item() == pytest.approx(open_ratio)
    assert eye(blink_l=1.0, blink_r=1.0)[2].item() == 0.0
    assert eye(blink_l=1.0)[2].item() == pytest.approx(open_ratio / 2)
    torch.testing.assert_close(eye()[:2], source.eye_ratio[0])


@pytest.mark.parametrize("name", list(EXPRESSION_DIRECTIONS))
def test_each_expression_moves_only_its_keypoints(name):
    source = make_source()
    for value in (0.8, -0.8):
        delta = expression_offsets(neutral_motion(1, **{name: value}), 1.0)[0]
        side = EXPRESSION_DIRECTIONS[name][0 if value > 0 else 1]
        moved = {(kp, axis) for kp, axis, _ in side}
        assert delta.abs().sum() > 0
        for kp in range(21):
            for axis in range(3):
                if (kp, axis) not in moved:
                    assert delta[kp, axis] == 0, (name, kp, axis)
        keypoints = semantic_keypoints(neutral_motion(1, **{name: value}), source, MappingGains())
        base = semantic_keypoints(neutral_motion(1), source, MappingGains())
        assert not torch.allclose(keypoints, base)


def test_smile_follows_upstreams_slider():
    delta = expression_offsets(neutral_motion(1, smile=1.0))[0]
    assert delta[14, 1].item() == pytest.approx(-0.02) and delta[17, 2].item() == pytest.approx(
        0.003
    )
    half = expression_offsets(neutral_motion(1, smile=0.5), gain=2.0)[0]
    torch.testing.assert_close(half, delta)


def latent_motion(latent: torch.Tensor) -> Motion:
    t = latent.shape[0]
    pose = torch.zeros(t, 6)
    pose[:, 5] = 1
    return Motion(pose, torch.zeros(t, 0), (), 25.0, latent=latent, space=LIVEPORTRAIT_SPACE)


def test_latent_layout_is_seventy_columns():
    assert LATENT_WIDTH == 70 == sum(w for _, w in LIVEPORTRAIT_LATENT)
    assert [n for n, _ in LIVEPORTRAIT_LATENT] == ["exp", "pitch", "yaw", "roll", "t", "scale"]


def test_the_portraits_own_latent_gives_its_own_keypoints():
    source = make_source()
    latent = source_latent(source, frames=2)
    assert latent.shape == (2, 70)
    kp = latent_keypoints(latent_motion(latent), source)
    expected = place_keypoints(source.kp, source.angles, source.exp, source.t, source.scale)
    torch.testing.assert_close(kp, expected.expand(2, -1, -1), atol=1e-6, rtol=0)


def test_latent_columns_are_read_by_name():
    source = make_source()
    latent = source_latent(source, frames=1).clone()
    latent[0, 63 + 2] += 20.0  # roll, in degrees
    latent[0, 69] = 2.0  # scale
    kp = latent_keypoints(latent_motion(latent), source)
    angles = source.angles + torch.tensor([[0.0, 0.0, 20.0]])
    expected = place_keypoints(source.kp, angles, source.exp, source.t, torch.tensor([[2.0]]))
    torch.testing.assert_close(kp, expected, atol=1e-6, rtol=0)


def test_a_latent_of_the_wrong_width_or_space_is_refused():
    source = make_source()
    with pytest.raises(ContractError, match="70 columns"):
        latent_keypoints(latent_motion(torch.zeros(2, 69)), source)
    other = Motion(torch.zeros(1, 6), torch.zeros(1, 0), (), 25.0, latent=torch.zeros(1, 70),
                   space="other")  # fmt: skip
    with pytest.raises(ContractError, match="liveportrait-kp70"):
        latent_keypoints(other, source)


def test_rules_motion_opens_the_lips_on_vowels_and_closes_them_on_pbm():
    """The default motion generator through the mapping: the lip target is open on "aa" and
    closed (below the portrait's own ratio) on a p/b/m, as meshwarp's lips are."""
    from talkingface.pipeline.contracts import VISEME_FEATURES, VISEMES, AudioFeatures, Controls
    from talkingface.plugins.motion.rules import RulesMotion

    rows = []
    for viseme, frames, level in (("aa", 20, 0.8), ("PP", 10, 0.5), ("aa", 20, 0.8)):
        row = torch.zeros(len(VISEME_FEATURES))
        row[VISEMES.index(viseme)], row[-1] = 1.0, level
        rows += [row] * frames
    features = AudioFeatures(torch.stack(rows), 25.0, "visemes", VISEME_FEATURES)
    motion = RulesMotion().generate(features, Controls(seed=0))
    source = make_source()
    lip, _ = retarget_ratios(motion, source, MappingGains())
    target, rest = lip[:, 1], source.lip_ratio.item()
    assert target[10:18].min() > rest + 0.1  # open vowel
    assert target[21:29].max() < 0.2 * rest  # p/b/m: pressed shut
    assert target[40:48].min() > rest + 0.1
