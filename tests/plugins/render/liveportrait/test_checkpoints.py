"""Loading LivePortrait checkpoints: the published layout (keys and shapes from the manifest
beside this file, a copy of `checkpoint_manifest.json`), .pth == .safetensors, the `module.`
prefix, refused pickles and every error naming the file, key and shapes."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import pytest
import torch

from talkingface.pipeline.errors import TalkingFaceError
from talkingface.plugins.render.liveportrait import (
    SMALL_CONFIG,
    LivePortraitModels,
    LivePortraitWeightsError,
    load_models,
)

MANIFEST = json.loads((Path(__file__).parent / "checkpoint_manifest.json").read_text())
BASE = "base_models/spade_generator.pth"
RETARGETING = "retargeting_models/stitching_retargeting_module.pth"


def _outputs(models, inputs):
    feature = models.extract_feature_3d(inputs["image"])
    info = models.get_kp_info(inputs["image"])
    return {
        "feature": feature,
        "out": models.warp_decode(feature, inputs["kp_source"], inputs["kp_driving"])["out"],
        "kp": models.transform_keypoint(info),
        "lip": models.retarget_lip(inputs["kp_source"], inputs["lip_ratio"]),
        "eye": models.retarget_eye(inputs["kp_source"], inputs["eye_ratio"]),
        "stitch": models.stitch(inputs["kp_source"], inputs["kp_driving"]),
    }


def test_full_size_state_dicts_have_the_published_layout():
    with torch.device("meta"):
        models = LivePortraitModels()
    ours = {
        f"{stem}.pth": (
            {part: {k: list(v.shape) for k, v in sd.items()} for part, sd in content.items()}
            if stem.startswith("retargeting")
            else {k: list(v.shape) for k, v in content.items()}
        )
        for stem, content in models.network_state_dicts().items()
    }
    assert ours == MANIFEST


def test_full_size_load_of_the_manifest_layout(tmp_path):
    # Zero tensors of every manifest key and shape, stored as broadcast views of one element
    # so the 520 MB of published weights cost nothing to write.
    def zeros(key, shape):
        dtype = torch.long if key.endswith("num_batches_tracked") else torch.float32
        return torch.zeros((), dtype=dtype).expand(shape)

    for name, keys in MANIFEST.items():
        path = tmp_path / name
        path.parent.mkdir(parents=True, exist_ok=True)
        if name == RETARGETING:
            content = {
                part: {f"module.{k}": zeros(k, s) for k, s in sd.items()}
                for part, sd in keys.items()
            }
        else:
            content = {k: zeros(k, s) for k, s in keys.items()}
        torch.save(content, path)
    models = load_models(tmp_path)
    assert models.config.output_size == 512
    assert not any(t.is_meta for t in [*models.parameters(), *models.buffers()])
    kp = torch.zeros(1, 21, 3)
    assert models.retarget_eye(kp, torch.ones(1, 3)).abs().sum() == 0
    assert models.stitch(kp, kp).shape == (1, 65)


def test_pth_and_safetensors_give_identical_outputs(small_models, small_inputs, tmp_path):
    small_models.save(tmp_path / "pth")
    small_models.save(tmp_path / "st", format="safetensors")
    assert (tmp_path / "st/retargeting_models/stitching_retargeting_module.safetensors").is_file()
    from_pth = load_models(tmp_path / "pth", config=SMALL_CONFIG, kernel_backend="torch")
    from_st = load_models(tmp_path / "st", config=SMALL_CONFIG, kernel_backend="torch")
    expected = _outputs(small_models, small_inputs)
    for outputs in (_outputs(from_pth, small_inputs), _outputs(from_st, small_inputs)):
        assert all(torch.equal(outputs[k], expected[k]) for k in expected)


def test_module_prefix_is_stripped(small_models, small_inputs, tmp_path):
    small_models.save(tmp_path)
    retargeting = torch.load(tmp_path / RETARGETING, weights_only=True)
    # As published: DataParallel's prefix on every retargeting key.
    assert all(k.startswith("module.") for sd in retargeting.values() for k in sd)
    base = torch.load(tmp_path / BASE, weights_only=True)
    torch.save({f"module.{k}": v for k, v in base.items()}, tmp_path / BASE)
    loaded = load_models(tmp_path, config=SMALL_CONFIG, kernel_backend="torch")
    expected, got = _outputs(small_models, small_inputs), _outputs(loaded, small_inputs)
    assert all(torch.equal(got[k], expected[k]) for k in expected)


def _broken_copy(weights_dir: Path, tmp_path: Path) -> Path:
    target = tmp_path / "weights"
    shutil.copytree(weights_dir, target)
    return target


def _edit(path: Path, edit) -> None:
    content = torch.load(path, weights_only=True)
    edit(content)
    torch.save(content, path)


def _load(directory):
    return load_models(directory, config=SMALL_CONFIG)


def test_missing_directory(tmp_path):
    with pytest.raises(LivePortraitWeightsError, match=r"does not exist.*base_models/ and "):
        _load(tmp_path / "nowhere")


def test_missing_file_names_it_and_where_weights_come_from(small_weights_dir, tmp_path):
    weights = _broken_copy(small_weights_dir, tmp_path)
    (weights / "base_models/warping_module.pth").unlink()
    with pytest.raises(
        LivePortraitWeightsError,
        match=r"base_models/warping_module\.pth.*pretrained_weights/liveportrait",
    ):
        _load(weights)


def test_a_file_that_is_not_a_checkpoint(small_weights_dir, tmp_path):
    weights = _broken_copy(small_weights_dir, tmp_path)
    (weights / BASE).write_bytes(b"<html>404 not found</html>")
    with pytest.raises(LivePortraitWeightsError, match=r"spade_generator\.pth is not a PyTorch"):
        _load(weights)
    (weights / BASE).unlink()
    (weights / BASE).with_suffix(".safetensors").write_bytes(b"\x00" * 64)
    with pytest.raises(LivePortraitWeightsError, match=r"not a readable safetensors"):
        _load(weights)


def test_a_checkpoint_that_is_not_a_state_dict(small_weights_dir, tmp_path):
    weights = _broken_copy(small_weights_dir, tmp_path)
    torch.save([torch.zeros(1)], weights / BASE)
    with pytest.raises(LivePortraitWeightsError, match=r"dict of tensors, got list"):
        _load(weights)
    weights = _broken_copy(small_weights_dir, tmp_path / "b")
    torch.save({"retarget_shoulder": {}}, weights / RETARGETING)
    with pytest.raises(LivePortraitWeightsError, match=r"missing retarget_mouth, retarget_eye"):
        _load(weights)


def test_missing_and_unexpected_keys_are_named(small_weights_dir, tmp_path):
    weights = _broken_copy(small_weights_dir, tmp_path)
    _edit(weights / BASE, lambda sd: sd.pop("up_0.conv_s.weight_v"))
    with pytest.raises(
        LivePortraitWeightsError, match=r"spade_generator\.pth: missing key up_0\.conv_s\.weight_v"
    ):
        _load(weights)
    weights = _broken_copy(small_weights_dir, tmp_path / "b")
    _edit(weights / RETARGETING, lambda c: c["retarget_eye"].update(extra=torch.zeros(1)))
    with pytest.raises(LivePortraitWeightsError, match=r"unexpected key retarget_eye\.extra"):
        _load(weights)


def test_shape_mismatch_names_file_key_and_both_shapes(small_weights_dir, tmp_path):
    weights = _broken_copy(small_weights_dir, tmp_path)
    _edit(weights / BASE, lambda sd: sd.update(fc=None) or sd.update({"fc.bias": torch.zeros(7)}))
    with pytest.raises(LivePortraitWeightsError, match=r"dict of tensors, but its entry 'fc' is"):
        _load(weights)
    _edit(weights / BASE, lambda sd: sd.pop("fc"))
    with pytest.raises(
        LivePortraitWeightsError,
        match=r"spade_generator\.pth: key fc\.bias has shape \[7\], expected \[64\]",
    ):
        _load(weights)
    weights = _broken_copy(small_weights_dir, tmp_path / "b")
    _edit(
        weights / RETARGETING,
        lambda c: c["retarget_mouth"].update({"module.mlp.0.weight": torch.zeros(16, 66)}),
    )
    with pytest.raises(
        LivePortraitWeightsError,
        match=r"stitching_retargeting_module\.pth: key retarget_mouth\.mlp\.0\.weight has shape "
        r"\[16, 66\], expected \[16, 65\]",
    ):
        _load(weights)


class _RunsCode:
    """Unpickling this calls os.mkdir: what a malicious checkpoint would do."""

    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return (os.mkdir, (str(self.marker),))


def test_a_pickle_that_would_run_code_is_refused(small_weights_dir, tmp_path):
    weights = _broken_copy(small_weights_dir, tmp_path)
    marker = tmp_path / "code_ran"
    _edit(weights / BASE, lambda sd: sd.update(payload=_RunsCode(marker)))
    with pytest.raises(
        LivePortraitWeightsError, match=r"spade_generator\.pth was refused.*posix\.mkdir"
    ):
        _load(weights)
    assert not marker.exists()


def test_the_error_is_a_talkingface_error():
    assert issubclass(LivePortraitWeightsError, TalkingFaceError)
