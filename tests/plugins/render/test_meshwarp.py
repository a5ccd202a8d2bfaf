"""Tests of the ``meshwarp`` renderer: the conformance suite, fidelity at rest, and that each
expression does what it says, measured by face analysis on the rendered frames."""

from __future__ import annotations

import math
from functools import cache

import pytest
import torch

from talkingface.pipeline.contracts import EXPRESSION_NAMES, Motion
from talkingface.pipeline.errors import ConfigError, ContractError, InputError
from talkingface.pipeline.registry import PluginManager
from talkingface.plugins.render.mesh import (
    BASIS_NAMES,
    backward_flow,
    displace_points,
    forward_displacement,
)
from talkingface.plugins.render.meshwarp import MeshWarpConfig, MeshWarpRenderer
from talkingface.testing import RendererConformance, neutral_motion

SIZE = 256  # half the default: the face is still ~130 px, plenty for the landmarker


@cache
def _stage() -> MeshWarpRenderer:
    stage = MeshWarpRenderer(MeshWarpConfig(size=SIZE, flow_grid=64, chunk_frames=4))
    stage.ensure_loaded()
    return stage


@cache
def _portrait():
    from talkingface.assets import demo_portrait

    try:
        return demo_portrait()
    except InputError as exc:
        pytest.skip(f"needs the shipped demo portrait: {exc}")


@cache
def _prepared():
    return _stage().prepare(_portrait())


def motion(frames: int = 1, **values: float) -> Motion:
    """``frames`` identical frames: neutral except for the given expression / pose values."""
    return neutral_motion(frames, **values)


def render(**values: float) -> torch.Tensor:
    """One rendered frame ``[SIZE, SIZE, 3]`` uint8."""
    return _stage().render(_prepared(), motion(**values)).data[0]


def landmarks(frame: torch.Tensor) -> torch.Tensor:
    return _stage()._analyzer.analyze(frame).points


class TestMeshWarpConformance(RendererConformance):
    num_frames = 6

    def make_stage(self):
        return _stage()

    def make_portrait(self):
        return _portrait()


def test_registered_as_meshwarp():
    entry = PluginManager(load_entry_points=False).registry.get("render", "meshwarp")
    assert issubclass(entry.cls, MeshWarpRenderer)


def test_neutral_motion_reproduces_the_crop():
    crop = _prepared().crop.image
    frame = render()
    mse = ((frame.float() - crop.float()) ** 2).mean().item()
    psnr = math.inf if mse == 0 else 10 * math.log10(255**2 / mse)
    assert psnr >= 35.0


def test_jaw_open_opens_the_mouth():
    from talkingface.face import mouth_opening

    closed = mouth_opening(landmarks(render())).item()
    opened = mouth_opening(landmarks(render(jaw_open=0.8))).item()
    assert opened > closed + 0.04


def test_lip_press_closes_an_open_jaw():
    from talkingface.face import mouth_opening

    opened = mouth_opening(landmarks(render(jaw_open=0.6))).item()
    pressed = mouth_opening(landmarks(render(jaw_open=0.6, lip_press=1.0))).item()
    assert pressed < opened - 0.03


def test_lip_press_closes_lips_the_portrait_itself_has_parted():
    # A portrait with parted lips (a frame rendered with the jaw open): on p/b/m the lips
    # must still meet, with no teeth or dark slivers left between them.
    from talkingface.face import mouth_opening
    from talkingface.pipeline.contracts import Portrait

    closed = mouth_opening(landmarks(render())).item()
    parted = Portrait(render(jaw_open=0.5), source="parted lips")
    stage = _stage()
    prepared = stage.prepare(parted)
    rest = stage.render(prepared, motion()).data[0]
    pressed = stage.render(prepared, motion(lip_press=1.0)).data[0]
    assert mouth_opening(landmarks(rest)).item() > closed + 0.03
    assert mouth_opening(landmarks(pressed)).item() < closed + 0.01
    # The mouth region of the pressed frame has no dark line wider than closed lips make.
    rest_crop = prepared.crop.image
    gray = pressed.float().mean(-1)
    box = landmarks(pressed)[[61, 291, 13, 14], :2]
    x0, x1 = int(box[0, 0]) + 3, int(box[1, 0]) - 3
    yc = int(box[2:, 1].mean())
    column_dark = (gray[yc - 6:yc + 7, x0:x1] < 0.6 * rest_crop.float().mean()).sum(0)
    assert column_dark.float().mean() <= 3.0


def test_blink_closes_the_eyes():
    from talkingface.face import eye_openness

    open_ = eye_openness(landmarks(render()))
    shut = eye_openness(landmarks(render(blink_l=1.0, blink_r=1.0)))
    assert (shut < 0.5 * open_).all()


def test_blink_l_closes_only_the_image_left_eye():
    from talkingface.face import eye_openness

    open_ = eye_openness(landmarks(render()))
    wink = eye_openness(landmarks(render(blink_l=1.0)))
    assert wink[0] < 0.5 * open_[0]
    assert wink[1] > 0.8 * open_[1]


def test_head_rotation_moves_the_head_but_not_the_corners():
    crop = _prepared().crop.image
    frame = render(yaw=0.25, pitch=0.1, roll=0.1)
    corner = SIZE // 8
    for ys in (slice(0, corner), slice(SIZE - corner, SIZE)):
        for xs in (slice(0, corner), slice(SIZE - corner, SIZE)):
            assert torch.equal(frame[ys, xs], crop[ys, xs])
    centre = slice(SIZE // 3, 2 * SIZE // 3)
    moved = (frame[centre, centre].float() - crop[centre, centre].float()).abs().mean()
    assert moved > 5.0


def _sample(field: torch.Tensor, xy: torch.Tensor) -> torch.Tensor:
    """Bilinear samples ``[n, C]`` of ``field [1, C, h, w]`` (spanning the frame) at ``xy``."""
    where = (xy / (SIZE - 1) * 2 - 1)[None, None]
    return torch.nn.functional.grid_sample(field, where, align_corners=True)[0, :, 0].T


def test_backward_flow_inverts_the_forward_displacement():
    rig = _prepared().state["rig"]
    coeffs = torch.zeros(1, len(BASIS_NAMES))
    coeffs[0, BASIS_NAMES.index("jaw_open")] = 1.0
    pose = torch.tensor([[0.15, 0.05, 0.05, 0.0, 0.0, 1.0]])
    flow = backward_flow(rig, coeffs, pose).permute(0, 3, 1, 2)  # [1, 2, h, w]
    forward = forward_displacement(rig, coeffs, pose, 1.0)
    # Chin, jaw line, nose tip, brows: from where each lands, the flow leads back to a point
    # that the forward displacement sends to the same place.
    index = torch.tensor([152, 148, 377, 1, 105, 334])
    landed = displace_points(rig, coeffs, pose, 1.0, index)[0]
    source = landed + _sample(flow, landed)
    assert (source + _sample(forward, source) - landed).norm(dim=-1).max() < 1.0
    # The lower lip is solved on the mesh itself: it comes back to where it was.
    lip = rig.lower_lip[len(rig.lower_lip) // 2 : len(rig.lower_lip) // 2 + 1]
    landed = displace_points(rig, coeffs, pose, 1.0, lip)[0]
    assert (landed + _sample(flow, landed) - rig.points[lip, :2]).norm() < 1.0


def test_mouth_interior_only_where_the_lips_part():
    stage, prepared = _stage(), _prepared()
    with_tile = stage.render(prepared, motion(jaw_open=0.8)).data[0]
    plain = MeshWarpRenderer(MeshWarpConfig(size=SIZE, flow_grid=64, mouth_interior=False))
    plain._analyzer = stage._analyzer
    without = plain.render(prepared, motion(jaw_open=0.8)).data[0]
    changed = (with_tile.float() - without.float()).abs().sum(-1) > 30
    ys, xs = changed.nonzero(as_tuple=True)
    lips = prepared.state["rig"].points[[13, 14, 78, 308], :2]
    assert len(ys) > 20
    # Every painted pixel sits around the mouth.
    assert xs.min() >= lips[:, 0].min() - 4 and xs.max() <= lips[:, 0].max() + 4
    assert ys.min() >= lips[:, 1].min() - 4


def test_missing_jaw_open_is_refused_by_name():
    names = tuple(n for n in EXPRESSION_NAMES if n != "jaw_open")
    pose = torch.zeros(2, 6)
    pose[:, 5] = 1
    bad = Motion(pose, torch.zeros(2, len(names)), names, 25.0)
    with pytest.raises(ContractError, match="jaw_open"):
        _stage().render(_prepared(), bad)


def test_streaming_chunk_of_other_size_matches_batch():
    stage, prepared = _stage(), _prepared()
    clip = motion(5, jaw_open=0.5, blink_r=0.9, yaw=-0.1)
    # Frames that differ, so each chunk's closing-eye window is different.
    clip.pose[:, 0] = torch.linspace(-0.2, 0.2, 5)
    clip.expression[:, EXPRESSION_NAMES.index("blink_l")] = torch.linspace(0.3, 1.0, 5)
    whole = stage.render(prepared, clip).data
    parts = torch.cat([stage.render(prepared, clip.slice(i, i + 2)).data for i in (0, 2, 4)])
    assert (whole.float() - parts.float()).abs().max() <= 1


@pytest.mark.parametrize("field, value", [("flow_grid", 1), ("size", 16), ("chunk_frames", 0)])
def test_bad_config_is_refused(field, value):
    with pytest.raises(ConfigError, match=field):
        MeshWarpRenderer(MeshWarpConfig(**{field: value}))


def test_the_profile_shows_the_kernel_backend_it_ran(pm):
    from talkingface.pipeline.graph import StageGraph
    from talkingface.plugins.audio.energy import EnergyEncoder
    from talkingface.plugins.motion.rules import RulesMotion
    from talkingface.testing import synthetic_speech

    graph = StageGraph(EnergyEncoder(), RulesMotion(), _stage(), plugin_manager=pm)
    profile = graph.run(_prepared(), synthetic_speech(0.2)).profile
    rows = {(r["kind"], r["method"]): r["backend"] for r in profile.rows()}
    assert rows[("render", "render")] == "torch" and rows[("audio", "encode")] is None
    assert "render [torch]" in profile.table()
