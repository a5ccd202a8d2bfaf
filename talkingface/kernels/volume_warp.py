"""Trilinear warp of a feature volume (LivePortrait/VASA-style renderers): 5D grid_sample with a
Triton forward and backward.

Contents, Liger-style: `warp3d_reference` (the spec: `F.grid_sample`), the forward and backward
`@triton.jit` kernels, their launchers, the `Warp3dFunction` autograd wrapper and `warp3d`
(checks + dispatch).
"""

import torch
import torch.nn.functional as F

from talkingface.kernels.dispatch import (
    launchable,
    record_backend,
    resolve_backend,
    runs_interpreted,
    tl,
    triton,
)

__all__ = ["Warp3dFunction", "warp3d", "warp3d_reference"]

PADDING_MODES = ("zeros", "border")
VOLUME_DTYPES = (torch.float32, torch.float16, torch.bfloat16)


def warp3d_reference(
    volume: torch.Tensor,
    grid: torch.Tensor,
    padding_mode: str = "zeros",
    align_corners: bool = False,
) -> torch.Tensor:
    """The spec of `warp3d`: `F.grid_sample(volume, grid, mode="bilinear", ...)` in 5D."""
    return F.grid_sample(
        volume, grid, mode="bilinear", padding_mode=padding_mode, align_corners=align_corners
    )


@triton.jit
def _sample_points(
    grid_ptr, b, p, valid, Ho, Wo, gs_b, gs_d, gs_h, gs_w, gs_k, D, H, W,
    ALIGN_CORNERS: tl.constexpr,
):
    """Output points ``p`` of batch item ``b``: their (od, oh, ow) indices and the volume
    coordinates (ix, iy, iz) their grid entries point at, unnormalised exactly as ATen's
    grid_sampler_unnormalize does (before any border clamping)."""
    ow = p % Wo
    oh = (p // Wo) % Ho
    od = p // (Wo * Ho)
    g = grid_ptr + b * gs_b + od * gs_d + oh * gs_h + ow * gs_w
    gx = tl.load(g, mask=valid, other=0.0).to(tl.float32)
    gy = tl.load(g + gs_k, mask=valid, other=0.0).to(tl.float32)
    gz = tl.load(g + 2 * gs_k, mask=valid, other=0.0).to(tl.float32)
    if ALIGN_CORNERS:
        ix = (gx + 1) * 0.5 * (W - 1)
        iy = (gy + 1) * 0.5 * (H - 1)
        iz = (gz + 1) * 0.5 * (D - 1)
    else:
        ix = ((gx + 1) * W - 1) * 0.5
        iy = ((gy + 1) * H - 1) * 0.5
        iz = ((gz + 1) * D - 1) * 0.5
    return od, oh, ow, ix, iy, iz


@triton.jit
def _floor_frac(coord):
    """``(floor as int32, fraction)`` of a sampling coordinate: the near corner and its weight."""
    floor = tl.floor(coord)
    return floor.to(tl.int32), coord - floor


@triton.jit
def _warp3d_forward_kernel(
    vol_ptr,
    grid_ptr,
    out_ptr,
    C,
    D,
    H,
    W,
    Do,
    Ho,
    Wo,
    vs_b,
    vs_c,
    vs_d,
    vs_h,
    vs_w,
    gs_b,
    gs_d,
    gs_h,
    gs_w,
    gs_k,
    BORDER: tl.constexpr,
    ALIGN_CORNERS: tl.constexpr,
    BLOCK_P: tl.constexpr,
    BLOCK_C: tl.constexpr,
):
    """One program = BLOCK_P output points of batch item program_id(1), all channels."""
    b = tl.program_id(1).to(tl.int64)
    n_out = Do * Ho * Wo
    p = tl.program_id(0) * BLOCK_P + tl.arange(0, BLOCK_P)
    valid = p < n_out
    od, oh, ow, ix, iy, iz = _sample_points(
        grid_ptr, b, p, valid, Ho, Wo, gs_b, gs_d, gs_h, gs_w, gs_k, D, H, W, ALIGN_CORNERS
    )
    if BORDER:
        ix = tl.minimum(tl.maximum(ix, 0.0), W - 1.0)
        iy = tl.minimum(tl.maximum(iy, 0.0), H - 1.0)
        iz = tl.minimum(tl.maximum(iz, 0.0), D - 1.0)
    x0, tx = _floor_frac(ix)
    y0, ty = _floor_frac(iy)
    z0, tz = _floor_frac(iz)

    vol = vol_ptr + b * vs_b
    out = out_ptr + b * C * n_out + p
    for c0 in range(0, C, BLOCK_C):
        ch = c0 + tl.arange(0, BLOCK_C)
        cmask = ch < C
        acc = tl.zeros([BLOCK_P, BLOCK_C], dtype=tl.float32)
        # Corner k takes x0 + bit0, y0 + bit1, z0 + bit2; a weight (1 - t) + bit * (2t - 1)
        # is t for the far corner and 1 - t for the near one.
        for k in tl.static_range(8):
            xk = x0 + (k & 1)
            yk = y0 + ((k >> 1) & 1)
            zk = z0 + (k >> 2)
            weight = (
                (1 - tx + (k & 1) * (2 * tx - 1))
                * (1 - ty + ((k >> 1) & 1) * (2 * ty - 1))
                * (1 - tz + (k >> 2) * (2 * tz - 1))
            )
            # Taps outside the volume read zero (zeros padding; border never leaves it with a
            # non-zero weight).
            inb = valid & (xk >= 0) & (xk < W) & (yk >= 0) & (yk < H) & (zk >= 0) & (zk < D)
            offset = zk * vs_d + yk * vs_h + xk * vs_w
            tap = tl.load(
                vol + offset[:, None] + ch[None, :] * vs_c,
                mask=inb[:, None] & cmask[None, :],
                other=0.0,
            ).to(tl.float32)
            acc += weight[:, None] * tap
        tl.store(
            out[:, None] + ch[None, :] * n_out,
            acc.to(out_ptr.dtype.element_ty),
            mask=valid[:, None] & cmask[None, :],
        )


@triton.jit
def _warp3d_backward_kernel(
    vol_ptr,
    grid_ptr,
    grad_out_ptr,
    grad_vol_ptr,
    grad_grid_ptr,
    C,
    D,
    H,
    W,
    Do,
    Ho,
    Wo,
    vs_b,
    vs_c,
    vs_d,
    vs_h,
    vs_w,
    gs_b,
    gs_d,
    gs_h,
    gs_w,
    gs_k,
    os_b,
    os_c,
    os_d,
    os_h,
    os_w,
    gvs_b,
    gvs_c,
    gvs_d,
    gvs_h,
    gvs_w,
    BORDER: tl.constexpr,
    ALIGN_CORNERS: tl.constexpr,
    NEED_VOLUME_GRAD: tl.constexpr,
    NEED_GRID_GRAD: tl.constexpr,
    BLOCK_P: tl.constexpr,
    BLOCK_C: tl.constexpr,
):
    """One program = BLOCK_P output points: scatter their upstream gradient into the volume
    gradient (fp32 atomics) and reduce their grid gradient over channels."""
    b = tl.program_id(1).to(tl.int64)
    n_out = Do * Ho * Wo
    p = tl.program_id(0) * BLOCK_P + tl.arange(0, BLOCK_P)
    valid = p < n_out
    od, oh, ow, ix, iy, iz = _sample_points(
        grid_ptr, b, p, valid, Ho, Wo, gs_b, gs_d, gs_h, gs_w, gs_k, D, H, W, ALIGN_CORNERS
    )
    # d(pixel coordinate)/d(grid): the unnormalise slope, zeroed where border clamping holds the
    # coordinate (ATen's clip_coordinates_set_grad: zero unless 0 < coordinate < size - 1).
    if ALIGN_CORNERS:
        sx = tl.zeros([BLOCK_P], dtype=tl.float32) + 0.5 * (W - 1)
        sy = tl.zeros([BLOCK_P], dtype=tl.float32) + 0.5 * (H - 1)
        sz = tl.zeros([BLOCK_P], dtype=tl.float32) + 0.5 * (D - 1)
    else:
        sx = tl.zeros([BLOCK_P], dtype=tl.float32) + 0.5 * W
        sy = tl.zeros([BLOCK_P], dtype=tl.float32) + 0.5 * H
        sz = tl.zeros([BLOCK_P], dtype=tl.float32) + 0.5 * D
    if BORDER:
        sx = tl.where((ix > 0) & (ix < W - 1.0), sx, 0.0)
        sy = tl.where((iy > 0) & (iy < H - 1.0), sy, 0.0)
        sz = tl.where((iz > 0) & (iz < D - 1.0), sz, 0.0)
        ix = tl.minimum(tl.maximum(ix, 0.0), W - 1.0)
        iy = tl.minimum(tl.maximum(iy, 0.0), H - 1.0)
        iz = tl.minimum(tl.maximum(iz, 0.0), D - 1.0)
    x0, tx = _floor_frac(ix)
    y0, ty = _floor_frac(iy)
    z0, tz = _floor_frac(iz)

    vol = vol_ptr + b * vs_b
    grad_vol = grad_vol_ptr + b * gvs_b
    grad_out = grad_out_ptr + b * os_b + od * os_d + oh * os_h + ow * os_w
    gix = tl.zeros([BLOCK_P], dtype=tl.float32)
    giy = tl.zeros([BLOCK_P], dtype=tl.float32)
    giz = tl.zeros([BLOCK_P], dtype=tl.float32)
    for c0 in range(0, C, BLOCK_C):
        ch = c0 + tl.arange(0, BLOCK_C)
        cmask = ch < C
        go = tl.load(
            grad_out[:, None] + ch[None, :] * os_c,
            mask=valid[:, None] & cmask[None, :],
            other=0.0,
        ).to(tl.float32)
        # Corners enumerated as in the forward kernel.
        for k in tl.static_range(8):
            xk = x0 + (k & 1)
            yk = y0 + ((k >> 1) & 1)
            zk = z0 + (k >> 2)
            wx = 1 - tx + (k & 1) * (2 * tx - 1)
            wy = 1 - ty + ((k >> 1) & 1) * (2 * ty - 1)
            wz = 1 - tz + (k >> 2) * (2 * tz - 1)
            inb = valid & (xk >= 0) & (xk < W) & (yk >= 0) & (yk < H) & (zk >= 0) & (zk < D)
            tap_mask = inb[:, None] & cmask[None, :]
            if NEED_VOLUME_GRAD:
                grad_offset = zk * gvs_d + yk * gvs_h + xk * gvs_w
                tl.atomic_add(
                    grad_vol + grad_offset[:, None] + ch[None, :] * gvs_c,
                    go * (wx * wy * wz)[:, None],
                    mask=tap_mask,
                )
            if NEED_GRID_GRAD:
                offset = zk * vs_d + yk * vs_h + xk * vs_w
                tap = tl.load(
                    vol + offset[:, None] + ch[None, :] * vs_c, mask=tap_mask, other=0.0
                ).to(tl.float32)
                # d weight / d t is +1 for the far corner and -1 for the near one, per axis.
                dot = tl.sum(go * tap, axis=1)
                gix += (2 * (k & 1) - 1) * wy * wz * dot
                giy += (2 * ((k >> 1) & 1) - 1) * wx * wz * dot
                giz += (2 * (k >> 2) - 1) * wx * wy * dot
    if NEED_GRID_GRAD:
        # grad_grid is a fresh contiguous [B, Do, Ho, Wo, 3] fp32 buffer.
        gg = grad_grid_ptr + (b * n_out + p) * 3
        tl.store(gg, gix * sx, mask=valid)
        tl.store(gg + 1, giy * sy, mask=valid)
        tl.store(gg + 2, giz * sz, mask=valid)


def _blocks(volume: torch.Tensor) -> tuple[int, int]:
    channels = volume.shape[1]
    if runs_interpreted(volume.device):
        # The interpreter pays per program and per loop trip: few, large blocks.
        return 1024, triton.next_power_of_2(channels)
    return 128, min(triton.next_power_of_2(channels), 32)


def warp3d_forward(
    volume: torch.Tensor, grid: torch.Tensor, padding_mode: str, align_corners: bool
) -> torch.Tensor:
    """Launch the forward kernel (inputs assumed checked; any strides). [B, C, Do, Ho, Wo]."""
    batch, channels, depth, height, width = volume.shape
    _, out_d, out_h, out_w, _ = grid.shape
    out = torch.empty(
        (batch, channels, out_d, out_h, out_w), dtype=volume.dtype, device=volume.device
    )
    block_p, block_c = _blocks(volume)
    kernel = launchable(_warp3d_forward_kernel, volume.device)
    kernel[(triton.cdiv(out_d * out_h * out_w, block_p), batch)](
        volume,
        grid,
        out,
        channels,
        depth,
        height,
        width,
        out_d,
        out_h,
        out_w,
        *volume.stride(),
        *grid.stride(),
        BORDER=padding_mode == "border",
        ALIGN_CORNERS=align_corners,
        BLOCK_P=block_p,
        BLOCK_C=block_c,
        num_warps=4,
    )
    return out


def warp3d_backward(
    volume: torch.Tensor,
    grid: torch.Tensor,
    grad_out: torch.Tensor,
    padding_mode: str,
    align_corners: bool,
    need_volume_grad: bool = True,
    need_grid_grad: bool = True,
) -> tuple[torch.Tensor | None, torch.Tensor | None]:
    """Launch the backward kernel: (grad wrt volume, grad wrt grid), each None if not needed."""
    batch, channels, depth, height, width = volume.shape
    _, out_d, out_h, out_w, _ = grid.shape
    # Atomics accumulate in fp32 whatever the volume dtype; zeros_like keeps channels-last
    # strides so the scatter stays as local as the volume's own layout.
    grad_volume = torch.zeros_like(volume, dtype=torch.float32) if need_volume_grad else None
    grad_grid = (
        torch.empty(grid.shape, dtype=torch.float32, device=grid.device) if need_grid_grad else None
    )
    block_p, block_c = _blocks(volume)
    kernel = launchable(_warp3d_backward_kernel, volume.device)
    kernel[(triton.cdiv(out_d * out_h * out_w, block_p), batch)](
        volume,
        grid,
        grad_out,
        grad_volume if need_volume_grad else grad_out,  # unused slot when not needed
        grad_grid if need_grid_grad else grad_out,
        channels,
        depth,
        height,
        width,
        out_d,
        out_h,
        out_w,
        *volume.stride(),
        *grid.stride(),
        *grad_out.stride(),
        *(grad_volume.stride() if need_volume_grad else (0, 0, 0, 0, 0)),
        BORDER=padding_mode == "border",
        ALIGN_CORNERS=align_corners,
        NEED_VOLUME_GRAD=need_volume_grad,
        NEED_GRID_GRAD=need_grid_grad,
        BLOCK_P=block_p,
        BLOCK_C=block_c,
        num_warps=4,
    )
    return (
        None if grad_volume is None else grad_volume.to(volume.dtype),
        None if grad_grid is None else grad_grid.to(grid.dtype),
    )


class Warp3dFunction(torch.autograd.Function):
    """Autograd wrapper of the Triton warp: gradients wrt volume and grid, as grid_sample's."""

    @staticmethod
    def forward(ctx, volume, grid, padding_mode, align_corners):
        ctx.save_for_backward(volume, grid)
        ctx.padding_mode = padding_mode
        ctx.align_corners = align_corners
        return warp3d_forward(volume, grid, padding_mode, align_corners)

    @staticmethod
    def backward(ctx, grad_out):
        volume, grid = ctx.saved_tensors
        grad_volume, grad_grid = warp3d_backward(
            volume,
            grid,
            grad_out,
            ctx.padding_mode,
            ctx.align_corners,
            need_volume_grad=ctx.needs_input_grad[0],
            need_grid_grad=ctx.needs_input_grad[1],
        )
        return grad_volume, grad_grid, None, None


def warp3d(
    volume: torch.Tensor,
    grid: torch.Tensor,
    *,
    padding_mode: str = "zeros",
    align_corners: bool = False,
    backend: str | None = None,
) -> torch.Tensor:
    """Sample a feature volume trilinearly at normalised grid points (differentiable).

    Exactly `torch.nn.functional.grid_sample(volume, grid, mode="bilinear", padding_mode=...,
    align_corners=...)` for 5D inputs; the Triton path accumulates in fp32 and accepts any
    strides (a channels-last volume is read in place).

    Args:
        volume: features, float32/float16/bfloat16, any memory layout.
        grid: sample points, last dim (x, y, z) in [-1, 1] (outside: see padding_mode); same
            dtype as volume.
        padding_mode: "zeros" (outside reads 0) or "border" (clamp to the edge).
        align_corners: True: -1 and 1 are the centres of the corner voxels; False: their
            outer edges.
        backend: "auto", "torch", "triton", or None for the process default.

    Shape:
        - volume: [B, C, D, H, W]
        - grid: [B, Do, Ho, Wo, 3]
        - output: [B, C, Do, Ho, Wo]
    """
    _check_inputs(volume, grid, padding_mode)
    chosen = resolve_backend(backend, volume.device)
    if chosen == "triton":
        out = Warp3dFunction.apply(volume, grid, padding_mode, bool(align_corners))
    else:
        out = warp3d_reference(volume, grid, padding_mode, align_corners)
    record_backend("warp3d", chosen)
    return out


def _check_inputs(volume: torch.Tensor, grid: torch.Tensor, padding_mode: str) -> None:
    if volume.dim() != 5:
        raise ValueError(f"warp3d: volume must be [B, C, D, H, W], got shape {tuple(volume.shape)}")
    if grid.dim() != 5 or grid.shape[-1] != 3 or grid.shape[0] != volume.shape[0]:
        raise ValueError(
            f"warp3d: grid must be [B, Do, Ho, Wo, 3] with B={volume.shape[0]} (volume's), "
            f"got shape {tuple(grid.shape)}"
        )
    if volume.dtype not in VOLUME_DTYPES or grid.dtype != volume.dtype:
        raise ValueError(
            "warp3d: volume and grid must share a float32/float16/bfloat16 dtype, got "
            f"volume {volume.dtype} and grid {grid.dtype}"
        )
    if grid.device != volume.device:
        raise ValueError(f"warp3d: grid is on {grid.device} but volume is on {volume.device}")
    if padding_mode not in PADDING_MODES:
        raise ValueError(
            f"warp3d: padding_mode must be one of {', '.join(PADDING_MODES)}, got {padding_mode!r}"
        )
