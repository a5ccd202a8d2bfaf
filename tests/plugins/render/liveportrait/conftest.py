"""Fixtures of the LivePortrait tests: small random networks and their checkpoint directories."""

from __future__ import annotations

import os

# Before talkingface.kernels is imported, so its Triton kernels are built for the interpreter
# (as tests/kernels/conftest.py does): the backend-parity test runs them on CPU tensors.
os.environ.setdefault("TRITON_INTERPRET", "1")

import pytest  # noqa: E402
import torch  # noqa: E402

from talkingface.plugins.render.liveportrait import SMALL_CONFIG, LivePortraitModels  # noqa: E402


@pytest.fixture(scope="module")
def small_models() -> LivePortraitModels:
    """Random networks of the small config (seed 0), torch kernels."""
    return LivePortraitModels.from_config(SMALL_CONFIG, seed=0, kernel_backend="torch")


@pytest.fixture(scope="module")
def small_inputs():
    """Two 64² crops and the keypoint/ratio tensors the API takes, fixed by a seed."""
    gen = torch.Generator().manual_seed(1)
    kp = torch.rand(2, 21, 3, generator=gen) * 1.6 - 0.8
    return {
        "image": torch.rand(2, 3, 64, 64, generator=gen),
        "kp_source": kp,
        "kp_driving": kp + 0.05 * torch.randn(2, 21, 3, generator=gen),
        "lip_ratio": torch.rand(2, 2, generator=gen),
        "eye_ratio": torch.rand(2, 3, generator=gen),
    }


@pytest.fixture(scope="module")
def small_weights_dir(small_models, tmp_path_factory):
    """`small_models` saved as .pth in the published layout."""
    return small_models.save(tmp_path_factory.mktemp("lp_small_pth"))
