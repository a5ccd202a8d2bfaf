"""2D warp of the default renderer: coarse backward flow -> bilinear sampling of the portrait ->
RGBA tile composite, fused into one pass over the output frames on GPU.

Contents, Liger-style: `warp2d_reference` (the spec, the CPU path and the test oracle),
`_warp2d_kernel` (Triton), `warp2d_triton` (its launcher) and `warp2d` (checks + dispatch).
"""

import torch
import torch.nn.functional as F

from talkingface.kernels.dispatch import (
    check_inference_only,
    launchable,
    record_backend,
    resolve_backend,
    runs_interpreted,
    tl,
    triton,
)

__all__ = ["warp2d", "warp2d_reference", "warp2d_triton"]

IMAGE_DTYPES = (torch.uint8, torch.float32, torch.float16, torch.bfloat16)


def warp2d_reference(
    image: torch.Tensor,
    flow: torch.Tensor,
    overlay: torch.Tensor | None = None,
    overlay_origin: torch.Tensor | None = None,
) -> torch.Tensor:
    """Torch implementation of `warp2d` (same arguments, inputs assumed checked).

    The sampling grid is built at the coarse resolution (node position + flow, normalised to
    grid_sample's [-1, 1]) and then upsampled: bilinear interpolation reproduces an affine map
    exactly, so this equals "upsample the flow, add the pixel coordinates" without two
    full-size passes.
    """
    batch, h, w, _ = flow.shape
    _, height, width, _ = image.shape
    flow = flow.float()
    # align_corners=True puts coarse node (i, j) at pixel (i*(H-1)/(h-1), j*(W-1)/(w-1)), which
    # is normalised coordinate (2i/(h-1) - 1, 2j/(w-1) - 1).
    node_x = torch.linspace(-1.0, 1.0, w, device=flow.device)
    node_y = torch.linspace(-1.0, 1.0, h, device=flow.device)[:, None]
    coarse = torch.stack(
        (node_x + flow[..., 0] * (2.0 / (width - 1)), node_y + flow[..., 1] * (2.0 / (height - 1))),
        dim=1,
    )
    # NCHW interpolate is several times faster on CPU than on a channels-last view.
    grid = F.interpolate(coarse, size=(height, width), mode="bilinear", align_corners=True)
    source = image.permute(0, 3, 1, 2).float().expand(batch, -1, -1, -1)
    warped = F.grid_sample(
        source,
        grid.permute(0, 2, 3, 1),
        mode="bilinear",
        padding_mode="border",
        align_corners=True,
    )
    frames = warped.permute(0, 2, 3, 1)  # [B, H, W, C] view; we own the storage
    if overlay is not None:
        _composite_tiles_(frames, overlay, overlay_origin)
    if image.dtype == torch.uint8:
        # +0.5 then the float->uint8 cast's truncation rounds half up on the clamped range.
        frames = frames.add_(0.5).clamp_(0.0, 255.0)
    return frames.to(image.dtype, memory_format=torch.contiguous_format)


def _composite_tiles_(frames: torch.Tensor, overlay: torch.Tensor, origin: torch.Tensor) -> None:
    """Blend tile b of `overlay` [B, th, tw, 4] into `frames` [B, H, W, 3] in place, touching
    only the part of the frame it covers."""
    _, height, width, _ = frames.shape
    _, th, tw, _ = overlay.shape
    for b, (y0, x0) in enumerate(origin.tolist()):
        top, bottom = max(y0, 0), min(y0 + th, height)
        left, right = max(x0, 0), min(x0 + tw, width)
        if top >= bottom or left >= right:
            continue
        tile = overlay[b, top - y0 : bottom - y0, left - x0 : right - x0].float()
        frames[b, top:bottom, left:right].lerp_(tile[..., :3], tile[..., 3:])


@triton.jit
def _warp2d_kernel(
    image_ptr,
    flow_ptr,
    overlay_ptr,
    origin_ptr,
    out_ptr,
    H,
    W,
    C,
    h,
    w,
    th,
    tw,
    y_max,
    x_max,
    flow_scale_y,
    flow_scale_x,
    is_b,
    is_h,
    is_w,
    is_c,
    fs_b,
    fs_h,
    fs_w,
    fs_k,
    os_b,
    os_h,
    os_w,
    os_c,
    gs_b,
    gs_k,
    HAS_OVERLAY: tl.constexpr,
    OUT_UINT8: tl.constexpr,
    BLOCK: tl.constexpr,
    BLOCK_C: tl.constexpr,
):
    """One program = BLOCK output pixels (all channels) of frame program_id(1)."""
    b = tl.program_id(1).to(tl.int64)
    pix = tl.program_id(0) * BLOCK + tl.arange(0, BLOCK)
    valid = pix < H * W
    y = pix // W
    x = pix % W
    yf = y.to(tl.float32)
    xf = x.to(tl.float32)

    # Coarse flow at this pixel, bilinear with align_corners=True. Coordinates are >= 0, so the
    # int cast is a floor.
    cy = yf * flow_scale_y
    cx = xf * flow_scale_x
    cy0 = tl.minimum(cy.to(tl.int32), h - 1)
    cx0 = tl.minimum(cx.to(tl.int32), w - 1)
    cy1 = tl.minimum(cy0 + 1, h - 1)
    cx1 = tl.minimum(cx0 + 1, w - 1)
    wy = cy - cy0.to(tl.float32)
    wx = cx - cx0.to(tl.float32)
    frame_flow = flow_ptr + b * fs_b
    f00 = frame_flow + cy0 * fs_h + cx0 * fs_w
    f01 = frame_flow + cy0 * fs_h + cx1 * fs_w
    f10 = frame_flow + cy1 * fs_h + cx0 * fs_w
    f11 = frame_flow + cy1 * fs_h + cx1 * fs_w
    dx00 = tl.load(f00, mask=valid, other=0.0).to(tl.float32)
    dx01 = tl.load(f01, mask=valid, other=0.0).to(tl.float32)
    dx10 = tl.load(f10, mask=valid, other=0.0).to(tl.float32)
    dx11 = tl.load(f11, mask=valid, other=0.0).to(tl.float32)
    dy00 = tl.load(f00 + fs_k, mask=valid, other=0.0).to(tl.float32)
    dy01 = tl.load(f01 + fs_k, mask=valid, other=0.0).to(tl.float32)
    dy10 = tl.load(f10 + fs_k, mask=valid, other=0.0).to(tl.float32)
    dy11 = tl.load(f11 + fs_k, mask=valid, other=0.0).to(tl.float32)
    dx_top = dx00 + wx * (dx01 - dx00)
    dx = dx_top + wy * (dx10 + wx * (dx11 - dx10) - dx_top)
    dy_top = dy00 + wx * (dy01 - dy00)
    dy = dy_top + wy * (dy10 + wx * (dy11 - dy10) - dy_top)

    # Source position, clamped to the frame (border padding).
    sx = tl.minimum(tl.maximum(xf + dx, 0.0), x_max)
    sy = tl.minimum(tl.maximum(yf + dy, 0.0), y_max)
    x0 = sx.to(tl.int32)
    y0 = sy.to(tl.int32)
    x1 = tl.minimum(x0 + 1, W - 1)
    y1 = tl.minimum(y0 + 1, H - 1)
    ax = (sx - x0.to(tl.float32))[:, None]
    ay = (sy - y0.to(tl.float32))[:, None]

    ch = tl.arange(0, BLOCK_C)
    mask = valid[:, None] & (ch < C)[None, :]
    frame = image_ptr + b * is_b + ch[None, :] * is_c
    v00 = tl.load(frame + (y0 * is_h + x0 * is_w)[:, None], mask=mask, other=0.0).to(tl.float32)
    v01 = tl.load(frame + (y0 * is_h + x1 * is_w)[:, None], mask=mask, other=0.0).to(tl.float32)
    v10 = tl.load(frame + (y1 * is_h + x0 * is_w)[:, None], mask=mask, other=0.0).to(tl.float32)
    v11 = tl.load(frame + (y1 * is_h + x1 * is_w)[:, None], mask=mask, other=0.0).to(tl.float32)
    top = v00 + ax * (v01 - v00)
    val = top + ay * (v10 + ax * (v11 - v10) - top)

    if HAS_OVERLAY:
        oy = tl.load(origin_ptr + b * gs_b).to(tl.int32)
        ox = tl.load(origin_ptr + b * gs_b + gs_k).to(tl.int32)
        ty = y - oy
        tx = x - ox
        inside = valid & (ty >= 0) & (ty < th) & (tx >= 0) & (tx < tw)
        texel = overlay_ptr + b * os_b + ty * os_h + tx * os_w
        alpha = tl.load(texel + 3 * os_c, mask=inside, other=0.0).to(tl.float32)
        rgb = tl.load(
            texel[:, None] + ch[None, :] * os_c, mask=inside[:, None] & mask, other=0.0
        ).to(tl.float32)
        val = val + alpha[:, None] * (rgb - val)

    if OUT_UINT8:
        val = tl.minimum(tl.maximum(tl.floor(val + 0.5), 0.0), 255.0)
    out = out_ptr + (b * H * W + pix)[:, None] * C + ch[None, :]
    tl.store(out, val.to(out_ptr.dtype.element_ty), mask=mask)


def warp2d_triton(
    image: torch.Tensor,
    flow: torch.Tensor,
    overlay: torch.Tensor | None = None,
    overlay_origin: torch.Tensor | None = None,
) -> torch.Tensor:
    """Launch `_warp2d_kernel` (inputs assumed checked; any strides). Returns [B, H, W, C]."""
    image_batch, height, width, channels = image.shape
    batch, h, w, _ = flow.shape
    out = torch.empty((batch, height, width, channels), dtype=image.dtype, device=image.device)
    # The interpreter pays per program, not per element: big blocks keep tests fast.
    block = 4096 if runs_interpreted(image.device) else 256
    has_overlay = overlay is not None
    if not has_overlay:
        # Never read (HAS_OVERLAY is False); any tensor on the device fills the slots.
        overlay, overlay_origin = out, out
    tile_h, tile_w = (overlay.shape[1], overlay.shape[2]) if has_overlay else (0, 0)
    os_b, os_h, os_w, os_c = overlay.stride() if has_overlay else (0, 0, 0, 0)
    gs_b, gs_k = overlay_origin.stride() if has_overlay else (0, 0)
    is_b, is_h, is_w, is_c = image.stride()
    kernel = launchable(_warp2d_kernel, image.device)
    kernel[(triton.cdiv(height * width, block), batch)](
        image,
        flow,
        overlay,
        overlay_origin,
        out,
        height,
        width,
        channels,
        h,
        w,
        tile_h,
        tile_w,
        float(height - 1),
        float(width - 1),
        (h - 1) / (height - 1),
        (w - 1) / (width - 1),
        is_b if image_batch > 1 else 0,  # one portrait broadcast across the frames
        is_h,
        is_w,
        is_c,
        *flow.stride(),
        os_b,
        os_h,
        os_w,
        os_c,
        gs_b,
        gs_k,
        HAS_OVERLAY=has_overlay,
        OUT_UINT8=image.dtype == torch.uint8,
        BLOCK=block,
        BLOCK_C=triton.next_power_of_2(channels),
        num_warps=4,
    )
    return out


def warp2d(
    image: torch.Tensor,
    flow: torch.Tensor,
    overlay: torch.Tensor | None = None,
    overlay_origin: torch.Tensor | None = None,
    *,
    backend: str | None = None,
) -> torch.Tensor:
    """Warp a portrait by a coarse backward flow and composite an RGBA tile over each frame.

    Output pixel (y, x) samples the image bilinearly at (x + fx, y + fy), where (fx, fy) is the
    coarse flow upsampled bilinearly with align_corners=True semantics (coarse node (i, j) sits
    at pixel (i*(H-1)/(h-1), j*(W-1)/(w-1))). Pixel centres are integer coordinates; source
    coordinates are clamped to the frame (border padding). Then, inside each tile's footprint,
    out = warped * (1 - a) + rgb * a.

    Args:
        image: portrait(s), channels-last, uint8 or float; Bi == 1 broadcasts across frames.
        flow: coarse backward flow in output-pixel units, last dim (dx, dy); h, w >= 2.
        overlay: optional straight-alpha RGBA tile per frame; colour in the image's value range
            (0..255 for uint8 images), alpha in [0, 1]. Needs C == 3.
        overlay_origin: (y0, x0) of each tile's top-left pixel in the output; may lie partly or
            wholly outside the frame (those parts are ignored).
        backend: "auto", "torch", "triton", or None for the process default.

    Returns:
        Frames in the image's dtype; uint8 is rounded half up and clamped to 0..255.

    Shape:
        - image: [Bi, H, W, C], Bi in (1, B), H, W >= 2
        - flow: [B, h, w, 2]
        - overlay: [B, th, tw, 4]
        - overlay_origin: [B, 2] int32/int64
        - output: [B, H, W, C]

    Example:
        >>> frames = warp2d(portrait[None], torch.zeros(8, 64, 64, 2))  # 8 still frames
    """
    _check_inputs(image, flow, overlay, overlay_origin)
    chosen = resolve_backend(backend, image.device)
    if chosen == "triton":
        check_inference_only("warp2d", image, flow, overlay)
        out = warp2d_triton(image, flow, overlay, overlay_origin)
    else:
        out = warp2d_reference(image, flow, overlay, overlay_origin)
    record_backend("warp2d", chosen)
    return out


def _check_inputs(image, flow, overlay, overlay_origin) -> None:
    if image.dim() != 4:
        raise ValueError(
            f"warp2d: image must be [Bi, H, W, C] channels-last, got shape {tuple(image.shape)}"
        )
    if image.dtype not in IMAGE_DTYPES:
        raise ValueError(f"warp2d: image dtype must be uint8 or float, got {image.dtype}")
    if flow.dim() != 4 or flow.shape[-1] != 2 or not flow.is_floating_point():
        raise ValueError(
            "warp2d: flow must be a float [B, h, w, 2] tensor (last dim = dx, dy), got "
            f"{flow.dtype} of shape {tuple(flow.shape)}"
        )
    image_batch, height, width, channels = image.shape
    batch, h, w, _ = flow.shape
    if image_batch not in (1, batch):
        raise ValueError(
            f"warp2d: image batch Bi={image_batch} must be 1 (one portrait for all frames) or "
            f"equal to flow's B={batch}"
        )
    if height < 2 or width < 2 or channels < 1:
        raise ValueError(f"warp2d: image [Bi, H, W, C] needs H, W >= 2, C >= 1, got {image.shape}")
    if h < 2 or w < 2:
        raise ValueError(f"warp2d: flow [B, h, w, 2] needs h, w >= 2 nodes, got h={h}, w={w}")
    if flow.device != image.device:
        raise ValueError(f"warp2d: flow is on {flow.device} but image is on {image.device}")
    if (overlay is None) != (overlay_origin is None):
        raise ValueError("warp2d: pass overlay and overlay_origin together (or neither)")
    if overlay is None:
        return
    if overlay.dim() != 4 or overlay.shape[0] != batch or overlay.shape[-1] != 4:
        raise ValueError(
            f"warp2d: overlay must be [B, th, tw, 4] RGBA with B={batch}, got "
            f"{tuple(overlay.shape)}"
        )
    if not overlay.is_floating_point():
        raise ValueError(f"warp2d: overlay must be float (straight alpha), got {overlay.dtype}")
    if channels != 3:
        raise ValueError(f"warp2d: an overlay needs a 3-channel image, got C={channels}")
    if tuple(overlay_origin.shape) != (batch, 2) or overlay_origin.dtype not in (
        torch.int32,
        torch.int64,
    ):
        raise ValueError(
            f"warp2d: overlay_origin must be int32/int64 [B, 2] (y0, x0) with B={batch}, got "
            f"{overlay_origin.dtype} of shape {tuple(overlay_origin.shape)}"
        )
    for name, tensor in (("overlay", overlay), ("overlay_origin", overlay_origin)):
        if tensor.device != image.device:
            raise ValueError(f"warp2d: {name} is on {tensor.device} but image is on {image.device}")
