"""Tests of ``meshwarp`` with ``paste_back``: frames are the whole portrait with the animated face
composited in place, the picture outside the face keeps its pixels, batch equals streaming."""

from __future__ import annotations

import warnings
from functools import cache

import numpy as np
import pytest
import torch

from talkingface.face.paste import output_canvas
from talkingface.pipeline.contracts import Frames, Portrait, PreparedPortrait
from talkingface.pipeline.errors import ConfigError, ContractError, InputError
from talkingface.plugins.render.meshwarp import MeshWarpConfig, MeshWarpRenderer
from talkingface.plugins.render.paste import build_mesh_paste
from talkingface.testing import neutral_motion, talking_motion

SIZE = 256
# The demo face on a wider, taller, odd-sized picture of noise: the crop covers only part of it,
# and noise shows any pixel that is not the portrait's own.
TOP, LEFT, HEIGHT, WIDTH = 70, 150, 641, 761


def _config(**changes) -> MeshWarpConfig:
    return MeshWarpConfig(size=SIZE, flow_grid=64, chunk_frames=4, paste_back=True, **changes)


@cache
def _stage() -> MeshWarpRenderer:
    stage = MeshWarpRenderer(_config())
    stage.ensure_loaded()
    return stage


@cache
def _portrait() -> Portrait:
    from talkingface.assets import demo_portrait

    try:
        face = demo_portrait().pixels
    except InputError as exc:
        pytest.skip(f"needs the shipped demo portrait: {exc}")
    g = torch.Generator().manual_seed(0)
    pixels = torch.randint(0, 256, (HEIGHT, WIDTH, 3), generator=g, dtype=torch.uint8)
    pixels[TOP : TOP + 512, LEFT : LEFT + 512] = face
    return Portrait(pixels, "padded demo portrait")


_PREPARE_WARNINGS: list[str] = []


@cache
def _prepared():
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        prepared = _stage().prepare(_portrait())
    _PREPARE_WARNINGS.extend(str(w.message) for w in caught)
    return prepared


def _weight() -> torch.Tensor:
    """The crop's share in the composite, over the whole frame."""
    paste = _prepared().state["paste"].paste
    y0, y1, x0, x1 = paste.box
    weight = torch.zeros(paste.size)
    weight[y0:y1, x0:x1] = torch.from_numpy(paste.weight)
    return weight


def test_frames_have_the_portraits_size_trimmed_to_even():
    prepared = _prepared()
    assert prepared.size == (HEIGHT - 1, WIDTH - 1)
    assert _stage().output_size == prepared.size
    frames = _stage().render(prepared, neutral_motion(2, jaw_open=0.5))
    assert frames.size == (HEIGHT - 1, WIDTH - 1) and frames.data.dtype == torch.uint8


def test_streaming_equals_batch():
    stage, prepared = _stage(), _prepared()
    motion = talking_motion(7)
    batch = stage.render(prepared, motion)
    processor = stage.stream(prepared)
    parts, start = [], 0
    for size in (3, 1, 3):
        parts.append(processor.push(motion.slice(start, start + size)))
        start += size
    assert processor.flush() is None
    streamed = Frames.concat(parts)
    assert streamed.start_frame == 0 and torch.equal(streamed.data, batch.data)
    assert torch.equal(stage.render(prepared, motion).data, batch.data)  # deterministic


def test_the_picture_outside_the_face_is_the_portraits():
    frames = _stage().render(_prepared(), talking_motion(6)).data
    original = _portrait().pixels[: HEIGHT - 1, : WIDTH - 1]
    outside = _weight() == 0
    # The crop is feathered in well inside the picture: most of it is untouched.
    assert outside.float().mean() > 0.5
    for frame in frames:
        assert torch.equal(frame[outside], original[outside])
    # The face itself moves.
    assert (frames.float() - original.float()).abs().amax() > 50


def test_the_feather_lies_where_nothing_moves():
    """Where the crop is blended into the portrait its pixels are those of the still portrait,
    whatever the head does, so the blend cannot show double edges or a seam."""
    stage, prepared = _stage(), _prepared()
    rest = stage.render(prepared, neutral_motion(1)).data[0]
    turned = stage.render(
        prepared, neutral_motion(1, yaw=0.3, pitch=-0.15, roll=0.1, tx=0.05, scale=1.1,
                                 jaw_open=0.8)
    ).data[0]  # fmt: skip
    weight = _weight()
    feather = (weight > 0) & (weight < 1)
    assert feather.sum() > 1000
    assert torch.equal(turned[feather], rest[feather])
    assert not torch.equal(turned[weight == 1], rest[weight == 1])


def test_a_big_portrait_is_scaled_down_to_max_side():
    pixels = np.zeros((1201, 801, 3), dtype=np.uint8)
    canvas, to_portrait = output_canvas(pixels, 600)
    assert canvas.shape == (600, 400, 3)
    # Canvas pixel centres map onto portrait pixel centres: x + 0.5 = (x' + 0.5) * scale.
    sx, sy = 801 / 400, 1201 / 600
    np.testing.assert_allclose(to_portrait, [[sx, 0, sx / 2 - 0.5], [0, sy, sy / 2 - 0.5]])
    small, _ = output_canvas(np.zeros((31, 40, 3), dtype=np.uint8), 1920)
    assert small.shape == (30, 40, 3)


def test_max_side_applies_to_the_frames():
    prepared = _prepared()
    paste = build_mesh_paste(
        _portrait().pixels.numpy(), prepared.crop.matrix.numpy(),
        prepared.state["rig"], 400,
    ).paste  # fmt: skip
    assert paste.size == (round(HEIGHT * 400 / WIDTH) // 2 * 2, 400)
    crops = torch.zeros((2, SIZE, SIZE, 3), dtype=torch.uint8)
    assert paste.composite(crops).shape == (2, *paste.size, 3)
    # Scaled down, the crop covers fewer output pixels than at full size.
    assert paste.enlargement < prepared.state["paste"].paste.enlargement


def test_crop_output_is_the_default():
    assert MeshWarpConfig().paste_back is False
    assert MeshWarpRenderer().output_size == (512, 512)


def test_a_portrait_prepared_the_other_way_is_refused():
    prepared = _prepared()
    cropped = PreparedPortrait(
        prepared.portrait, prepared.renderer, (SIZE, SIZE),
        {k: v for k, v in prepared.state.items() if k != "paste"},
    )  # fmt: skip
    with pytest.raises(ContractError, match="prepare it with this renderer"):
        _stage().render(cropped, neutral_motion(1))
    crop_stage = MeshWarpRenderer(MeshWarpConfig(size=SIZE, flow_grid=64))
    with pytest.raises(ContractError, match="prepare it with this renderer"):
        crop_stage.render(prepared, neutral_motion(1))


def test_an_enlarged_face_is_warned_about():
    _prepared()
    assert any("enlarged 1.6x" in w and "render.params.size=448" in w for w in _PREPARE_WARNINGS)


def test_bad_max_side_is_refused():
    with pytest.raises(ConfigError, match="paste_back_max_side"):
        MeshWarpRenderer(_config(paste_back_max_side=10))


def test_cli_override_reaches_the_renderer():
    from talkingface.pipeline.config import load_config, stage_params

    cfg = load_config("default", ["render.params.paste_back=true"])
    assert stage_params(cfg, "render")["paste_back"] is True


@pytest.mark.filterwarnings("ignore:paste_back")  # the demo face is enlarged 1.6x
def test_pipeline_writes_a_video_of_the_portraits_size(tmp_path):
    from talkingface import Pipeline
    from talkingface.io import probe_media
    from talkingface.testing import synthetic_speech

    pipe = Pipeline.from_config(
        "default", [f"render.params.size={SIZE}", "render.params.flow_grid=64",
                    "render.params.paste_back=true"],
    )  # fmt: skip
    speech = synthetic_speech(0.6)
    out = tmp_path / "out.mp4"
    pipe.run(_portrait(), speech, output=out)
    info = probe_media(out)
    assert (info["video"]["height"], info["video"]["width"]) == (HEIGHT - 1, WIDTH - 1)
