"""SPADE modulation of the renderer's decoder, fused: instance norm -> x * (1 + gamma) + beta ->
leaky ReLU in one Triton kernel (5 memory passes where eager torch makes 13).

Why this op: on CPU the decoder's convolutions dominate, so the CPU path stays torch; on GPU the
convolutions run on tensor cores while norm + modulate + activation are bandwidth-bound (18
SPADE calls at 64x64 -> 512x512), and fusing them cuts 13 memory passes to 5. The profile and
the estimate are in `benchmarks/README.md` (`benchmarks/kernels/profile_spade_decoder.py`,
`benchmarks/kernels/bench_spade.py`).

Contents, Liger-style: `spade_modulate_reference` (the spec, the CPU path and the test oracle),
`_spade_modulate_kernel`, its launcher `spade_modulate_triton` and `spade_modulate`.
"""

import torch

from talkingface.kernels.dispatch import (
    check_inference_only,
    launchable,
    record_backend,
    resolve_backend,
    runs_interpreted,
    tl,
    triton,
)

__all__ = ["spade_modulate", "spade_modulate_reference", "spade_modulate_triton"]

DTYPES = (torch.float32, torch.float16, torch.bfloat16)


def spade_modulate_reference(
    x: torch.Tensor,
    gamma: torch.Tensor,
    beta: torch.Tensor,
    eps: float = 1e-5,
    negative_slope: float = 0.2,
) -> torch.Tensor:
    """Torch implementation of `spade_modulate`, computed in fp32 and cast back to x's dtype."""
    xf = x.float()
    var, mean = torch.var_mean(xf, dim=(2, 3), unbiased=False, keepdim=True)
    out = (xf - mean) * torch.rsqrt(var + eps)
    out = out * (1.0 + gamma.float()) + beta.float()
    return torch.nn.functional.leaky_relu(out, negative_slope).to(x.dtype)


@triton.jit
def _spade_modulate_kernel(
    x_ptr,
    gamma_ptr,
    beta_ptr,
    out_ptr,
    C,
    W,
    n_pix,
    eps,
    negative_slope,
    xs_b,
    xs_c,
    xs_h,
    xs_w,
    gs_b,
    gs_c,
    gs_h,
    gs_w,
    bs_b,
    bs_c,
    bs_h,
    bs_w,
    ys_b,
    ys_c,
    ys_h,
    ys_w,
    BLOCK: tl.constexpr,
):
    """One program = one (b, c) plane of H*W pixels: statistics pass, then modulate pass."""
    row = tl.program_id(0)
    b = (row // C).to(tl.int64)
    c = (row % C).to(tl.int64)
    x_plane = x_ptr + b * xs_b + c * xs_c
    # Sums of (x - first pixel) rather than of x: E[d^2] - E[d]^2 loses far fewer digits when
    # the plane's mean is large next to its spread.
    shift = tl.load(x_plane).to(tl.float32)
    s1 = tl.zeros([BLOCK], dtype=tl.float32)
    s2 = tl.zeros([BLOCK], dtype=tl.float32)
    for start in range(0, n_pix, BLOCK):
        idx = start + tl.arange(0, BLOCK)
        mask = idx < n_pix
        v = tl.load(x_plane + (idx // W) * xs_h + (idx % W) * xs_w, mask=mask, other=0.0)
        d = tl.where(mask, v.to(tl.float32) - shift, 0.0)
        s1 += d
        s2 += d * d
    mean_d = tl.sum(s1, axis=0) / n_pix
    var = tl.maximum(tl.sum(s2, axis=0) / n_pix - mean_d * mean_d, 0.0)
    mean = shift + mean_d
    rstd = 1.0 / tl.sqrt(var + eps)

    gamma_plane = gamma_ptr + b * gs_b + c * gs_c
    beta_plane = beta_ptr + b * bs_b + c * bs_c
    out_plane = out_ptr + b * ys_b + c * ys_c
    for start in range(0, n_pix, BLOCK):
        idx = start + tl.arange(0, BLOCK)
        mask = idx < n_pix
        yy = idx // W
        xx = idx % W
        v = tl.load(x_plane + yy * xs_h + xx * xs_w, mask=mask, other=0.0).to(tl.float32)
        g = tl.load(gamma_plane + yy * gs_h + xx * gs_w, mask=mask, other=0.0).to(tl.float32)
        bt = tl.load(beta_plane + yy * bs_h + xx * bs_w, mask=mask, other=0.0).to(tl.float32)
        y = (v - mean) * rstd * (1.0 + g) + bt
        y = tl.where(y >= 0, y, y * negative_slope)
        tl.store(out_plane + yy * ys_h + xx * ys_w, y.to(out_ptr.dtype.element_ty), mask=mask)


def spade_modulate_triton(
    x: torch.Tensor,
    gamma: torch.Tensor,
    beta: torch.Tensor,
    eps: float = 1e-5,
    negative_slope: float = 0.2,
) -> torch.Tensor:
    """Launch `_spade_modulate_kernel` (inputs assumed checked; gamma/beta may be broadcast
    views). The output keeps x's memory format."""
    batch, channels, height, width = x.shape
    gamma = gamma.expand_as(x)  # broadcast dims become stride 0: no copies
    beta = beta.expand_as(x)
    out = torch.empty_like(x)
    block = 4096 if runs_interpreted(x.device) else 1024
    kernel = launchable(_spade_modulate_kernel, x.device)
    kernel[(batch * channels,)](
        x,
        gamma,
        beta,
        out,
        channels,
        width,
        height * width,
        float(eps),
        float(negative_slope),
        *x.stride(),
        *gamma.stride(),
        *beta.stride(),
        *out.stride(),
        BLOCK=block,
        num_warps=4,
    )
    return out


def spade_modulate(
    x: torch.Tensor,
    gamma: torch.Tensor,
    beta: torch.Tensor,
    eps: float = 1e-5,
    negative_slope: float = 0.2,
    *,
    backend: str | None = None,
) -> torch.Tensor:
    """SPADE's param-free instance norm, spatial modulation and activation, fused.

    out = leaky_relu(instance_norm(x) * (1 + gamma) + beta, negative_slope), where
    instance_norm normalises each (b, c) plane over H, W with the biased variance and `eps`
    inside the square root (`nn.InstanceNorm2d(affine=False)`). `negative_slope=1.0` gives the
    un-activated form SPADEResnetBlock uses on its learned shortcut. Forward only.

    Args:
        x: decoder features, float32/float16/bfloat16, any memory layout.
        gamma, beta: modulation maps from the segmentation branch, broadcastable to x
            (e.g. [B, C, H, W], or [B, C, 1, 1] for AdaIN-style styles).
        eps: variance epsilon.
        negative_slope: leaky ReLU slope for negative values.
        backend: "auto", "torch", "triton", or None for the process default.

    Shape:
        - x: [B, C, H, W]
        - gamma, beta: broadcastable to [B, C, H, W]
        - output: [B, C, H, W], x's dtype
    """
    _check_inputs(x, gamma, beta)
    chosen = resolve_backend(backend, x.device)
    if chosen == "triton":
        check_inference_only("spade_modulate", x, gamma, beta)
        out = spade_modulate_triton(x, gamma, beta, eps, negative_slope)
    else:
        out = spade_modulate_reference(x, gamma, beta, eps, negative_slope)
    record_backend("spade_modulate", chosen)
    return out


def _check_inputs(x: torch.Tensor, gamma: torch.Tensor, beta: torch.Tensor) -> None:
    if x.dim() != 4 or x.shape[2] * x.shape[3] == 0:
        raise ValueError(f"spade_modulate: x must be [B, C, H, W] with H*W > 0, got {x.shape}")
    if x.dtype not in DTYPES:
        raise ValueError(f"spade_modulate: x must be float32/float16/bfloat16, got {x.dtype}")
    for name, tensor in (("gamma", gamma), ("beta", beta)):
        if tensor.dim() != 4 or any(
            s not in (1, n) for s, n in zip(tensor.shape, x.shape, strict=True)
        ):
            raise ValueError(
                f"spade_modulate: {name} must be broadcastable to x's [B, C, H, W] = "
                f"{list(x.shape)} (each dim equal or 1), got {list(tensor.shape)}"
            )
        if not tensor.is_floating_point():
            raise ValueError(f"spade_modulate: {name} must be float, got {tensor.dtype}")
        if tensor.device != x.device:
            raise ValueError(f"spade_modulate: {name} is on {tensor.device}, x on {x.device}")
