"""The LivePortrait model API on small random networks: output shapes and ranges, determinism,
batch == one at a time, input checks, kernel backends."""

from __future__ import annotations

import pytest
import torch

from talkingface.plugins.render.liveportrait import SMALL_CONFIG, LivePortraitModels
from talkingface.plugins.render.liveportrait.model_config import (
    AppearanceConfig,
    DenseMotionConfig,
    LivePortraitConfig,
    MlpConfig,
    MotionExtractorConfig,
    RetargetingConfig,
    SpadeDecoderConfig,
    WarpingConfig,
)


def _all_outputs(models: LivePortraitModels, inputs: dict) -> dict[str, torch.Tensor]:
    image, kp_s, kp_d = inputs["image"], inputs["kp_source"], inputs["kp_driving"]
    feature = models.extract_feature_3d(image)
    info = models.get_kp_info(image)
    decoded = models.warp_decode(feature, kp_s, kp_d)
    return {
        "feature_3d": feature,
        **{f"kp_info.{k}": v for k, v in info.items()},
        "transformed": models.transform_keypoint(info),
        **{f"warp_decode.{k}": v for k, v in decoded.items()},
        "lip": models.retarget_lip(kp_s, inputs["lip_ratio"]),
        "eye": models.retarget_eye(kp_s, inputs["eye_ratio"]),
        "stitch": models.stitch(kp_s, kp_d),
        "stitching": models.stitching(kp_s, kp_d),
    }


def test_every_output_has_the_documented_shape(small_models, small_inputs):
    out = _all_outputs(small_models, small_inputs)
    shapes = {k: tuple(v.shape) for k, v in out.items()}
    assert shapes == {
        "feature_3d": (2, *SMALL_CONFIG.volume_shape),
        "kp_info.pitch": (2, 1),
        "kp_info.yaw": (2, 1),
        "kp_info.roll": (2, 1),
        "kp_info.t": (2, 3),
        "kp_info.exp": (2, 21, 3),
        "kp_info.scale": (2, 1),
        "kp_info.kp": (2, 21, 3),
        "transformed": (2, 21, 3),
        "warp_decode.out": (2, 3, 128, 128),
        "warp_decode.occlusion_map": (2, 1, 16, 16),
        "warp_decode.deformation": (2, 8, 16, 16, 3),
        "lip": (2, 21, 3),
        "eye": (2, 21, 3),
        "stitch": (2, 65),
        "stitching": (2, 21, 3),
    }
    assert all(v.dtype == torch.float32 and torch.isfinite(v).all() for v in out.values())
    image = out["warp_decode.out"]
    assert image.min() >= 0 and image.max() <= 1 and image.std() > 0
    for angle in ("pitch", "yaw", "roll"):
        assert (out[f"kp_info.{angle}"].abs() <= 100.5).all()


def test_same_seed_same_networks_and_outputs(small_models, small_inputs):
    twin = LivePortraitModels.from_config(SMALL_CONFIG, seed=0, kernel_backend="torch")
    other = LivePortraitModels.from_config(SMALL_CONFIG, seed=1, kernel_backend="torch")
    ours, theirs = _all_outputs(small_models, small_inputs), _all_outputs(twin, small_inputs)
    assert all(torch.equal(ours[k], theirs[k]) for k in ours)
    again = _all_outputs(small_models, small_inputs)
    assert all(torch.equal(ours[k], again[k]) for k in ours)
    assert not torch.equal(
        ours["warp_decode.out"], _all_outputs(other, small_inputs)["warp_decode.out"]
    )


def test_batch_equals_one_item_at_a_time(small_models, small_inputs):
    batched = _all_outputs(small_models, small_inputs)
    for i in range(2):
        single = _all_outputs(small_models, {k: v[i : i + 1] for k, v in small_inputs.items()})
        for key, value in single.items():
            torch.testing.assert_close(value[0], batched[key][i], atol=1e-5, rtol=1e-5)


def test_stitching_applies_the_stitch_delta(small_models, small_inputs):
    kp_s, kp_d = small_inputs["kp_source"], small_inputs["kp_driving"]
    delta = small_models.stitch(kp_s, kp_d)
    expected = kp_d + delta[:, :63].reshape(2, 21, 3)
    expected[..., :2] += delta[:, None, 63:65]
    torch.testing.assert_close(small_models.stitching(kp_s, kp_d), expected)


def test_identity_motion_keeps_the_source_volume(small_models, small_inputs):
    # Same source and driving keypoints: every candidate motion is the identity, so the
    # deformation is the identity grid whatever the mask.
    feature = small_models.extract_feature_3d(small_inputs["image"])
    kp = small_inputs["kp_source"]
    deformation = small_models.warp_decode(feature, kp, kp)["deformation"]
    from talkingface.plugins.render.liveportrait.layers import coordinate_grid

    grid = coordinate_grid(8, 16, 16, dtype=torch.float32, device=torch.device("cpu"))
    torch.testing.assert_close(deformation, grid.expand_as(deformation), atol=1e-5, rtol=0)


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda m, x: m.extract_feature_3d(x["image"][:, :, :32]), r"\[B, 3, 64, 64\]"),
        (lambda m, x: m.get_kp_info(x["image"].to(torch.uint8)), "float image"),
        (
            lambda m, x: m.warp_decode(x["image"], x["kp_source"], x["kp_driving"]),
            "feature_3d must be",
        ),
        (lambda m, x: m.stitch(x["kp_source"][:, :20], x["kp_driving"]), r"\[B, 21, 3\]"),
        (lambda m, x: m.retarget_lip(x["kp_source"], x["eye_ratio"]), "takes 65"),
    ],
)
def test_bad_inputs_are_refused_with_the_expected_shape(small_models, small_inputs, call, message):
    with pytest.raises(ValueError, match=message):
        call(small_models, small_inputs)


# Few channels, 2 keypoints: every kernel launch is a handful of interpreted programs.
TINY_CONFIG = LivePortraitConfig(
    input_size=32,
    appearance=AppearanceConfig(
        block_expansion=4, max_features=8, reshape_channel=2, reshape_depth=4, num_resblocks=1
    ),
    motion=MotionExtractorConfig(depths=(1, 1, 1, 1), dims=(4, 4, 4, 4), num_kp=2),
    warping=WarpingConfig(
        num_kp=2,
        block_expansion=1,
        max_features=8,
        reshape_channel=2,
        dense_motion=DenseMotionConfig(
            block_expansion=2, max_features=4, num_blocks=1, reshape_depth=4, compress=1
        ),
    ),
    decoder=SpadeDecoderConfig(
        block_expansion=1, max_features=8, out_channels=2, num_middle_blocks=1, spade_hidden=4
    ),
    retargeting=RetargetingConfig(
        stitching=MlpConfig(12, (4,), 8), lip=MlpConfig(8, (4,), 6), eye=MlpConfig(9, (4,), 6)
    ),
)


def test_kernel_backends_agree(monkeypatch):
    pytest.importorskip("triton")
    monkeypatch.setenv("TRITON_INTERPRET", "1")
    from talkingface.kernels import last_backend

    models = LivePortraitModels.from_config(TINY_CONFIG, seed=3, kernel_backend="torch")
    gen = torch.Generator().manual_seed(4)
    feature = models.extract_feature_3d(torch.rand(1, 3, 32, 32, generator=gen))
    kp_s = torch.rand(1, 2, 3, generator=gen) - 0.5
    kp_d = kp_s + 0.1 * torch.randn(1, 2, 3, generator=gen)
    reference = models.warp_decode(feature, kp_s, kp_d)
    models.set_kernel_backend("triton")
    fused = models.warp_decode(feature, kp_s, kp_d)
    assert last_backend("warp3d") == "triton"
    assert last_backend("spade_modulate") == "triton"
    for key in ("out", "occlusion_map", "deformation"):
        torch.testing.assert_close(fused[key], reference[key], atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize(
    ("dtype", "message"),
    [(torch.float16, "CUDA only"), (torch.bfloat16, "CUDA only"), (torch.float64, "must be one")],
)
def test_precisions_the_networks_cannot_run_are_refused(dtype, message):
    with pytest.raises(ValueError, match=message):
        LivePortraitModels.from_config(SMALL_CONFIG, dtype=dtype, device="cpu")
