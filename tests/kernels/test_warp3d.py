"""warp3d: the grid_sample spec against hand computations, the Triton kernels (forward and
backward) against it, input checks and dispatch."""

import importlib

import pytest
import torch

from talkingface.kernels import last_backend, warp3d, warp3d_reference


def _inputs(
    dtype=torch.float32,
    layout="contiguous",
    batch=2,
    channels=5,
    size=(4, 6, 7),
    out_size=(3, 5, 4),
    device="cpu",
    seed=0,
):
    gen = torch.Generator().manual_seed(seed)
    volume = torch.randn(batch, channels, *size, generator=gen)
    # Past [-1, 1] on purpose, so the padding mode matters.
    grid = torch.rand(batch, *out_size, 3, generator=gen) * 2.4 - 1.2
    if layout == "channels_last":
        volume = volume.contiguous(memory_format=torch.channels_last_3d)
    elif layout == "strided":
        volume = volume.transpose(3, 4).contiguous().transpose(3, 4)
        grid = torch.rand(batch, 3, *out_size, generator=gen).movedim(1, -1) * 2.4 - 1.2
    return volume.to(device, dtype), grid.to(device, dtype)


def _tolerance(dtype):
    return {torch.float32: 1e-5, torch.float16: 2e-3, torch.bfloat16: 1.6e-2}[dtype]


# --- the reference against hand computations ------------------------------------------------


def test_reference_hits_voxel_centres_and_averages_between_them():
    volume = torch.arange(2 * 3 * 4, dtype=torch.float32).reshape(1, 1, 2, 3, 4)
    # align_corners=True: -1 / +1 are the centres of the first / last voxel on each axis.
    grid = torch.tensor([[-1.0, -1.0, -1.0], [1.0, 1.0, 1.0], [-1.0 / 3, 0.0, -1.0]])
    out = warp3d_reference(volume, grid.reshape(1, 1, 1, 3, 3), align_corners=True)
    # Third point: x = 1 (voxel), y = 1 (voxel), z = 0 -> volume[0, 0, 0, 1, 1] = 5.
    torch.testing.assert_close(out.flatten(), torch.tensor([0.0, 23.0, 5.0]))
    mid = torch.tensor([[-2.0 / 3, -1.0, 0.0]]).reshape(1, 1, 1, 1, 3)  # x = .5, z = .5
    expected = (0 + 1 + 12 + 13) / 4
    torch.testing.assert_close(
        warp3d_reference(volume, mid, align_corners=True).flatten(), torch.tensor([expected])
    )


def test_reference_zeros_and_border_padding_outside_the_volume():
    volume = torch.full((1, 1, 2, 2, 2), 7.0)
    far = torch.full((1, 1, 1, 1, 3), 3.0)
    assert warp3d_reference(volume, far, padding_mode="zeros").item() == 0.0
    assert warp3d_reference(volume, far, padding_mode="border").item() == 7.0


# --- the Triton kernels against the reference -------------------------------------------------


@pytest.mark.parametrize("padding_mode", ["zeros", "border"])
@pytest.mark.parametrize("align_corners", [False, True])
@pytest.mark.parametrize("dtype", [torch.float32, torch.float16])
@pytest.mark.parametrize("layout", ["contiguous", "channels_last", "strided"])
def test_triton_forward_matches_grid_sample(
    interpreter, padding_mode, align_corners, dtype, layout
):
    volume, grid = _inputs(dtype, layout)
    # Oracle in fp32 on the same (rounded) inputs: the kernel accumulates in fp32 too.
    expected = warp3d_reference(volume.float(), grid.float(), padding_mode, align_corners)
    out = warp3d(
        volume, grid, padding_mode=padding_mode, align_corners=align_corners, backend="triton"
    )
    assert out.dtype == dtype and out.shape == (2, 5, 3, 5, 4)
    tol = _tolerance(dtype)
    torch.testing.assert_close(out.float(), expected, atol=tol, rtol=tol)
    assert last_backend("warp3d") == "triton"


def test_triton_forward_loops_over_channel_blocks(interpreter, monkeypatch):
    # The package re-exports the function under the module's name; fetch the module itself.
    warp3d_module = importlib.import_module("talkingface.kernels.volume_warp")
    # Force several channel blocks (and a ragged last one) on the interpreter's block sizes.
    monkeypatch.setattr(warp3d_module, "_blocks", lambda volume: (64, 4))
    volume, grid = _inputs(channels=10)
    torch.testing.assert_close(
        warp3d(volume, grid, backend="triton"), warp3d_reference(volume, grid)
    )


@pytest.mark.parametrize("padding_mode", ["zeros", "border"])
@pytest.mark.parametrize("align_corners", [False, True])
def test_triton_gradients_match_grid_sample(interpreter, padding_mode, align_corners):
    volume, grid = _inputs(layout="channels_last")
    grad_out = torch.randn(2, 5, 3, 5, 4, generator=torch.Generator().manual_seed(1))
    grads = {}
    for backend in ("torch", "triton"):
        v, g = volume.clone().requires_grad_(), grid.clone().requires_grad_()
        out = warp3d(v, g, padding_mode=padding_mode, align_corners=align_corners, backend=backend)
        grads[backend] = torch.autograd.grad(out, (v, g), grad_out)
    torch.testing.assert_close(grads["triton"][0], grads["torch"][0], atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(grads["triton"][1], grads["torch"][1], atol=1e-4, rtol=1e-4)


def test_triton_gradient_wrt_volume_only_with_broadcast_volume(interpreter):
    volume, grid = _inputs(batch=1)
    grid = torch.cat([grid, -grid])
    grads = []
    for backend in ("torch", "triton"):
        v = volume.clone().requires_grad_()
        warp3d(v.expand(2, -1, -1, -1, -1), grid, backend=backend).square().sum().backward()
        grads.append(v.grad)
    torch.testing.assert_close(grads[1], grads[0], atol=1e-5, rtol=1e-5)


@pytest.mark.gpu
@pytest.mark.parametrize("dtype", [torch.float32, torch.float16, torch.bfloat16])
@pytest.mark.parametrize("padding_mode", ["zeros", "border"])
def test_triton_matches_grid_sample_on_gpu(dtype, padding_mode):
    volume, grid = _inputs(
        dtype,
        "channels_last",
        batch=2,
        channels=32,
        size=(16, 64, 64),
        out_size=(16, 64, 64),
        device="cuda",
    )
    expected = warp3d_reference(volume.float(), grid.float(), padding_mode)
    out = warp3d(volume, grid, padding_mode=padding_mode, backend="triton")
    tol = _tolerance(dtype)
    torch.testing.assert_close(out.float(), expected, atol=tol, rtol=tol)


@pytest.mark.gpu
def test_triton_gradients_match_grid_sample_on_gpu():
    volume, grid = _inputs(channels=32, size=(8, 16, 16), out_size=(8, 16, 16), device="cuda")
    grads = {}
    for backend in ("torch", "triton"):
        v, g = volume.clone().requires_grad_(), grid.clone().requires_grad_()
        out = warp3d(v, g, padding_mode="border", align_corners=True, backend=backend)
        grads[backend] = torch.autograd.grad(out.square().sum(), (v, g))
    torch.testing.assert_close(grads["triton"][0], grads["torch"][0], atol=1e-4, rtol=1e-4)
    torch.testing.assert_close(grads["triton"][1], grads["torch"][1], atol=1e-3, rtol=1e-3)


# --- checks and dispatch ----------------------------------------------------------------------


def test_auto_on_cpu_is_grid_sample():
    volume, grid = _inputs()
    out = warp3d(volume, grid, backend="auto")
    assert last_backend("warp3d") == "torch"
    assert torch.equal(out, torch.nn.functional.grid_sample(volume, grid, align_corners=False))


@pytest.mark.parametrize(
    ("volume_shape", "grid_shape", "dtypes", "padding_mode", "match"),
    [
        ((2, 5, 4, 6), (2, 3, 5, 4, 3), None, "zeros", r"volume must be \[B, C, D, H, W\]"),
        ((2, 5, 4, 6, 7), (2, 3, 5, 4, 2), None, "zeros", r"grid must be \[B, Do, Ho, Wo, 3\]"),
        ((2, 5, 4, 6, 7), (1, 3, 5, 4, 3), None, "zeros", "B=2"),
        ((2, 5, 4, 6, 7), (2, 3, 5, 4, 3), torch.float16, "zeros", "share a"),
        ((2, 5, 4, 6, 7), (2, 3, 5, 4, 3), None, "reflection", "padding_mode"),
    ],
)
def test_bad_inputs_raise_value_error(volume_shape, grid_shape, dtypes, padding_mode, match):
    volume = torch.zeros(volume_shape)
    grid = torch.zeros(grid_shape, dtype=dtypes or torch.float32)
    with pytest.raises(ValueError, match=match):
        warp3d(volume, grid, padding_mode=padding_mode)
