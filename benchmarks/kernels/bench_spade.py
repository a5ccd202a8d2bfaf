"""Benchmark spade_modulate (instance norm + SPADE modulation + leaky ReLU) at the activation
shapes of LivePortrait's SPADE decoder (64x64 features -> 512x512 frames): the eager torch ops
the decoder runs, torch.compile of them, and the fused Triton kernel.

    python benchmarks/kernels/bench_spade.py --out benchmarks/results/kernels.csv
"""

from functools import partial

import torch
import torch.nn.functional as F
from _common import Results, add_dtype_args, measure_ms, parser, resolve_run

from talkingface.kernels.spade import spade_modulate_triton

# [C, H, W] of every SPADE input in the decoder: the middle blocks, then up_0 and up_1 (whose
# shortcut norms share their first norm's shape).
SHAPES = [(512, 64, 64), (512, 128, 128), (256, 128, 128), (256, 256, 256), (64, 256, 256)]


def eager(x, gamma, beta, eps=1e-5, negative_slope=0.2):
    """What LivePortrait's SPADE + SPADEResnetBlock.actvn run, op by op."""
    return F.leaky_relu(F.instance_norm(x, eps=eps) * (1 + gamma) + beta, negative_slope)


def main() -> None:
    p = parser(__doc__)
    add_dtype_args(p, ["float32", "float16"])
    args = p.parse_args()
    device, providers, dtypes = resolve_run(args)
    compiled = torch.compile(eager, dynamic=False) if "torch.compile" in providers else None
    runs = {"torch": eager, "torch.compile": compiled, "triton": spade_modulate_triton}
    results = Results(device)
    for dtype in dtypes:
        for shape in SHAPES:
            gen = torch.Generator().manual_seed(0)
            x, gamma, beta = (
                torch.randn(args.batch, *shape, generator=gen).to(device, dtype) for _ in range(3)
            )
            # Fused minimum: read x twice (statistics, then output), gamma, beta; write out.
            moved = 5 * x.numel() * x.element_size()
            with torch.no_grad():
                for provider in providers:
                    ms = measure_ms(partial(runs[provider], x, gamma, beta), device)
                    results.add(
                        "spade_modulate",
                        provider,
                        shape,
                        dtype,
                        args.batch,
                        ms,
                        moved,
                        "GB/s counts the fused kernel's 5 passes",
                    )
    results.write(args.out)


if __name__ == "__main__":
    main()
