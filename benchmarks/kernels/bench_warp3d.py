"""Benchmark warp3d at LivePortrait's shape (a 32x16x64x64 feature volume warped by a same-size
grid, B=1), forward and forward+backward: grid_sample, torch.compile of it, the Triton kernels.

    python benchmarks/kernels/bench_warp3d.py --out benchmarks/results/kernels.csv
"""

from functools import partial

import torch
import torch.nn.functional as F
from _common import Results, add_dtype_args, measure_ms, parser, resolve_run

from talkingface.kernels.volume_warp import Warp3dFunction, warp3d_reference

CHANNELS, DEPTH, SIZE = 32, 16, 64


def _forward_backward(fn, volume, grid, grad_out):
    volume = volume.detach().requires_grad_()
    grid = grid.detach().requires_grad_()
    torch.autograd.grad(fn(volume, grid, "zeros", False), (volume, grid), grad_out)


def main() -> None:
    p = parser(__doc__)
    add_dtype_args(p, ["float32", "float16", "bfloat16"])
    args = p.parse_args()
    device, providers, dtypes = resolve_run(args)
    compiled = (
        torch.compile(warp3d_reference, dynamic=False) if "torch.compile" in providers else None
    )
    forward = {
        "torch": warp3d_reference,
        "torch.compile": compiled,
        "triton": Warp3dFunction.apply,
    }
    results = Results(device)
    batch = args.batch
    shape = (CHANNELS, DEPTH, SIZE, SIZE)
    for dtype in dtypes:
        gen = torch.Generator().manual_seed(0)
        volume = torch.randn(batch, *shape, generator=gen).to(device, dtype)
        # A mild deformation of the identity grid: LivePortrait's warps move points a little.
        identity = torch.eye(3, 4).expand(batch, 3, 4)
        grid = F.affine_grid(identity, [batch, *shape], align_corners=False)
        grid = grid + 0.05 * torch.randn(grid.shape, generator=gen)
        grid = grid.to(device, dtype)
        grad_out = torch.randn(batch, *shape, generator=gen).to(device, dtype)
        moved = 2 * volume.numel() * volume.element_size() + grid.numel() * grid.element_size()
        for provider in providers:
            fn = forward[provider]
            with torch.no_grad():
                ms = measure_ms(partial(fn, volume, grid, "zeros", False), device)
            results.add("warp3d", provider, shape, dtype, batch, ms, moved, "forward")
            ms = measure_ms(partial(_forward_backward, fn, volume, grid, grad_out), device, 5)
            results.add("warp3d", provider, shape, dtype, batch, ms, None, "forward+backward")
    results.write(args.out)


if __name__ == "__main__":
    main()
