"""warp2d: the torch reference against hand computations, the Triton kernel against the
reference, input checks and dispatch."""

import pytest
import torch

from talkingface.kernels import KernelBackendError, last_backend, warp2d, warp2d_reference


def _inputs(
    dtype,
    batch=3,
    image_batch=1,
    height=37,
    width=53,
    coarse=(5, 6),
    contiguous=True,
    overlay=True,
    device="cpu",
    seed=0,
):
    """Random frames; non-contiguous variants are views of transposed/padded storage."""
    gen = torch.Generator().manual_seed(seed)
    scale = 255.0 if dtype == torch.uint8 else 1.0
    if contiguous:
        image = torch.rand(image_batch, height, width, 3, generator=gen) * scale
        flow = torch.randn(batch, *coarse, 2, generator=gen) * 4
    else:
        image = (torch.rand(image_batch, 3, height, width + 2, generator=gen) * scale).permute(
            0, 2, 3, 1
        )[:, :, 1:-1]
        flow = torch.randn(batch, 2, *coarse, generator=gen).permute(0, 2, 3, 1) * 4
    image = image.round().to(torch.uint8) if dtype == torch.uint8 else image.to(dtype)
    tile = tile_origin = None
    if overlay:
        tile = torch.rand(batch, 11, 17, 4, generator=gen)
        tile[..., :3] *= scale
        # One tile inside, one hanging off the top-left, one off the bottom-right corner.
        corners = [[9, 20], [-4, -6], [height - 5, width - 9]]
        tile_origin = torch.tensor([corners[b % 3] for b in range(batch)])
        tile, tile_origin = tile.to(device), tile_origin.to(device)
    return image.to(device), flow.to(device), tile, tile_origin


def _assert_matches(actual, expected, dtype):
    assert actual.shape == expected.shape and actual.dtype == expected.dtype
    if dtype == torch.uint8:
        # Both round half up, but fp32 sums in another order can land on either side of .5.
        diff = (actual.int() - expected.int()).abs()
        assert diff.max() <= 1 and (diff > 0).float().mean() < 0.01
    else:
        tol = {torch.float32: 1e-4, torch.float16: 2e-3, torch.bfloat16: 1.6e-2}[dtype]
        torch.testing.assert_close(actual.float(), expected.float(), atol=tol, rtol=tol)


# --- the reference against hand computations ------------------------------------------------


@pytest.mark.parametrize("dtype", [torch.uint8, torch.float32])
def test_reference_zero_flow_returns_the_image(dtype):
    image, _, _, _ = _inputs(dtype, image_batch=2, overlay=False)
    out = warp2d_reference(image, torch.zeros(2, 4, 4, 2))
    if dtype == torch.uint8:
        assert torch.equal(out, image)
    else:
        torch.testing.assert_close(out, image, atol=1e-5, rtol=0)


def test_reference_integer_flow_shifts_exactly():
    image, _, _, _ = _inputs(torch.uint8, image_batch=1, overlay=False)
    flow = torch.tensor([2.0, -1.0]).expand(1, 3, 3, 2)  # sample 2 px right, 1 px up
    out = warp2d_reference(image, flow)
    ys = (torch.arange(37) - 1).clamp(0, 36)
    xs = (torch.arange(53) + 2).clamp(0, 52)
    assert torch.equal(out[0], image[0][ys][:, xs])


def test_reference_bilinear_weights_and_border_clamp():
    image = torch.tensor([[0.0, 10.0], [20.0, 30.0]]).reshape(1, 2, 2, 1)
    flow = torch.tensor([0.25, 0.5]).expand(1, 2, 2, 2)
    out = warp2d_reference(image, flow)[0, ..., 0]
    # (0,0) samples (x=.25, y=.5); the rest clamp x and/or y to the last pixel.
    expected = torch.tensor([[12.5, 20.0], [22.5, 30.0]])
    torch.testing.assert_close(out, expected, atol=1e-4, rtol=0)


def test_reference_upsamples_flow_with_align_corners():
    # Image value = x. Coarse dx = 0, 1, 2 at nodes on pixels 0, 2, 4 -> dx(x) = x / 2.
    image = torch.arange(5.0).expand(1, 3, 5).unsqueeze(-1)
    flow = torch.zeros(1, 2, 3, 2)
    flow[..., 0] = torch.tensor([0.0, 1.0, 2.0])
    out = warp2d_reference(image, flow)[0, 0, :, 0]
    torch.testing.assert_close(out, (1.5 * torch.arange(5.0)).clamp(max=4), atol=1e-4, rtol=0)


def test_reference_composites_straight_alpha_and_rounds_half_up():
    image = torch.full((1, 6, 8, 3), 100, dtype=torch.uint8)
    tile = torch.zeros(1, 3, 4, 4)
    tile[..., :3] = 101.0
    tile[..., 3] = 0.5  # 100 * 0.5 + 101 * 0.5 = 100.5 -> 101
    out = warp2d_reference(image, torch.zeros(1, 2, 2, 2), tile, torch.tensor([[-1, 6]]))
    expected = image.clone()
    expected[0, :2, 6:] = 101  # the tile's rows 1..2 and columns 0..1 land in the frame
    assert torch.equal(out, expected)


def test_reference_ignores_a_tile_wholly_outside():
    image, flow, tile, _ = _inputs(torch.float32, batch=1)
    out = warp2d_reference(image, flow, tile, torch.tensor([[100, -500]]))
    torch.testing.assert_close(out, warp2d_reference(image, flow))


# --- the Triton kernel against the reference --------------------------------------------------


@pytest.mark.parametrize("dtype", [torch.uint8, torch.float32, torch.float16])
@pytest.mark.parametrize("overlay", [False, True], ids=["plain", "overlay"])
@pytest.mark.parametrize("image_batch", [1, 3], ids=["broadcast", "batched"])
@pytest.mark.parametrize("contiguous", [True, False], ids=["contiguous", "strided"])
def test_triton_matches_reference(interpreter, dtype, overlay, image_batch, contiguous):
    image, flow, tile, origin = _inputs(
        dtype, image_batch=image_batch, contiguous=contiguous, overlay=overlay
    )
    expected = warp2d_reference(image, flow, tile, origin)
    _assert_matches(warp2d(image, flow, tile, origin, backend="triton"), expected, dtype)
    assert last_backend("warp2d") == "triton"


@pytest.mark.parametrize("channels", [1, 4])
def test_triton_full_resolution_flow_and_other_channel_counts(interpreter, channels):
    image = torch.rand(2, 9, 13, channels)
    flow = torch.randn(2, 9, 13, 2) * 3  # h == H, w == W
    _assert_matches(
        warp2d(image, flow, backend="triton"), warp2d_reference(image, flow), torch.float32
    )


@pytest.mark.gpu
@pytest.mark.parametrize("dtype", [torch.uint8, torch.float32, torch.float16, torch.bfloat16])
def test_triton_matches_reference_on_gpu(dtype):
    image, flow, tile, origin = _inputs(dtype, batch=4, height=131, width=257, coarse=(9, 17))
    expected = warp2d_reference(image, flow, tile, origin)
    cuda = [t.cuda() for t in (image, flow, tile, origin)]
    _assert_matches(warp2d(*cuda, backend="triton").cpu(), expected, dtype)


# --- checks and dispatch ----------------------------------------------------------------------


def test_auto_on_cpu_runs_torch():
    image, flow, _, _ = _inputs(torch.uint8, overlay=False)
    warp2d(image, flow, backend="auto")
    assert last_backend("warp2d") == "torch"


def test_triton_on_cpu_without_interpreter_is_refused(monkeypatch):
    pytest.importorskip("triton")
    monkeypatch.setenv("TRITON_INTERPRET", "0")
    image, flow, _, _ = _inputs(torch.uint8, overlay=False)
    with pytest.raises(KernelBackendError, match="TRITON_INTERPRET=1"):
        warp2d(image, flow, backend="triton")


def test_triton_refuses_inputs_that_need_grad(interpreter):
    image, flow, _, _ = _inputs(torch.float32, overlay=False)
    with pytest.raises(ValueError, match="no backward"):
        warp2d(image, flow.requires_grad_(), backend="triton")


@pytest.mark.parametrize(
    ("change", "match"),
    [
        (lambda a: {**a, "image": a["image"][0]}, r"image must be \[Bi, H, W, C\]"),
        (lambda a: {**a, "image": a["image"].int()}, "image dtype"),
        (lambda a: {**a, "flow": a["flow"][..., :1]}, r"flow must be a float \[B, h, w, 2\]"),
        (lambda a: {**a, "flow": a["flow"][:, :1]}, "h, w >= 2"),
        (lambda a: {**a, "image": a["image"].expand(2, -1, -1, -1)}, "Bi=2"),
        (lambda a: {**a, "overlay": a["overlay"][..., :3]}, r"overlay must be \[B, th, tw, 4\]"),
        (lambda a: {**a, "overlay_origin": a["overlay_origin"].float()}, "overlay_origin"),
        (lambda a: {**a, "overlay_origin": None}, "together"),
        (lambda a: {**a, "image": a["image"][..., :1]}, "3-channel"),
    ],
)
def test_bad_inputs_raise_value_error_naming_the_argument(change, match):
    image, flow, tile, origin = _inputs(torch.uint8)
    args = {"image": image, "flow": flow, "overlay": tile, "overlay_origin": origin}
    with pytest.raises(ValueError, match=match):
        warp2d(**change(args))
