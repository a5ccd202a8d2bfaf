"""spade_modulate: the torch reference against SPADE's own modules and a hand computation, the
Triton kernel against the reference, input checks and dispatch."""

import pytest
import torch
import torch.nn.functional as F

from talkingface.kernels import last_backend, spade_modulate, spade_modulate_reference


def _inputs(
    dtype=torch.float32,
    layout="contiguous",
    shape=(2, 3, 11, 13),
    gamma_shape=None,
    device="cpu",
    seed=0,
):
    gen = torch.Generator().manual_seed(seed)
    x = torch.randn(*shape, generator=gen) * 2 + 0.5
    gamma = torch.randn(*(gamma_shape or shape), generator=gen) * 0.5
    beta = torch.randn(*(gamma_shape or shape), generator=gen) * 0.5
    if layout == "channels_last":
        x = x.contiguous(memory_format=torch.channels_last)
    elif layout == "strided":
        x = torch.randn(shape[0], shape[1], shape[3], shape[2] + 3, generator=gen)
        x = x.transpose(2, 3)[:, :, 1:-2]
    return x.to(device, dtype), gamma.to(device, dtype), beta.to(device, dtype)


def _tolerance(dtype):
    return {torch.float32: 1e-5, torch.float16: 2e-3, torch.bfloat16: 1.6e-2}[dtype]


def test_reference_matches_spade_modules():
    x, gamma, beta = _inputs()
    # SPADE: InstanceNorm2d(affine=False), then x * (1 + gamma) + beta, then SPADEResnetBlock's
    # leaky_relu(0.2).
    norm = torch.nn.InstanceNorm2d(3, affine=False)
    expected = F.leaky_relu(norm(x) * (1 + gamma) + beta, 0.2)
    torch.testing.assert_close(spade_modulate_reference(x, gamma, beta), expected)


def test_reference_by_hand():
    x = torch.tensor([1.0, 2.0, 3.0, 4.0]).reshape(1, 1, 2, 2)  # mean 2.5, biased var 1.25
    out = spade_modulate_reference(x, torch.ones_like(x), torch.zeros_like(x), eps=0.0)
    normalised = (torch.tensor([1.0, 2.0, 3.0, 4.0]) - 2.5) / 1.25**0.5
    expected = torch.where(normalised > 0, 2 * normalised, 0.4 * normalised)
    torch.testing.assert_close(out.flatten(), expected)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float16])
@pytest.mark.parametrize("layout", ["contiguous", "channels_last", "strided"])
@pytest.mark.parametrize(
    "gamma_shape", [None, (2, 3, 1, 1), (1, 3, 11, 1)], ids=["full", "per-channel", "broadcast"]
)
def test_triton_matches_reference(interpreter, dtype, layout, gamma_shape):
    x, gamma, beta = _inputs(dtype, layout, gamma_shape=gamma_shape)
    out = spade_modulate(x, gamma, beta, backend="triton")
    expected = spade_modulate_reference(x, gamma, beta)
    assert out.dtype == dtype and out.shape == x.shape
    tol = _tolerance(dtype)
    torch.testing.assert_close(out.float(), expected.float(), atol=tol, rtol=tol)
    assert last_backend("spade_modulate") == "triton"


def test_triton_plane_larger_than_a_block_and_large_mean(interpreter):
    # 70 x 70 > the interpreter's 4096-pixel block; a mean of 1000 next to a spread of 1 is
    # where a naive E[x^2] - E[x]^2 in fp32 falls apart.
    x, gamma, beta = _inputs(shape=(1, 2, 70, 70))
    x = x + 1000.0
    out = spade_modulate(x, gamma, beta, eps=1e-5, negative_slope=1.0, backend="triton")
    expected = spade_modulate_reference(x.double(), gamma.double(), beta.double(), 1e-5, 1.0)
    torch.testing.assert_close(out, expected.float(), atol=1e-3, rtol=1e-3)


@pytest.mark.gpu
@pytest.mark.parametrize("dtype", [torch.float32, torch.float16, torch.bfloat16])
def test_triton_matches_reference_on_gpu(dtype):
    x, gamma, beta = _inputs(dtype, "channels_last", shape=(2, 64, 96, 80), device="cuda")
    tol = _tolerance(dtype)
    torch.testing.assert_close(
        spade_modulate(x, gamma, beta, backend="triton").float(),
        spade_modulate_reference(x, gamma, beta).float(),
        atol=tol,
        rtol=tol,
    )


def test_auto_on_cpu_runs_torch():
    spade_modulate(*_inputs(), backend="auto")
    assert last_backend("spade_modulate") == "torch"


def test_triton_refuses_inputs_that_need_grad(interpreter):
    x, gamma, beta = _inputs()
    with pytest.raises(ValueError, match="no backward"):
        spade_modulate(x, gamma.requires_grad_(), beta, backend="triton")


@pytest.mark.parametrize(
    ("x_shape", "gamma_shape", "match"),
    [
        ((3, 11, 13), (3, 11, 13), r"x must be \[B, C, H, W\]"),
        ((2, 3, 11, 13), (2, 4, 11, 13), r"gamma must be broadcastable"),
        ((2, 3, 11, 13), (3, 11, 13), r"gamma must be broadcastable"),
    ],
)
def test_bad_shapes_raise_value_error(x_shape, gamma_shape, match):
    with pytest.raises(ValueError, match=match):
        spade_modulate(torch.zeros(x_shape), torch.zeros(gamma_shape), torch.zeros(x_shape))


def test_integer_input_raises_value_error():
    x = torch.zeros(1, 1, 2, 2, dtype=torch.int32)
    with pytest.raises(ValueError, match="float32/float16/bfloat16"):
        spade_modulate(x, x.float(), x.float())
