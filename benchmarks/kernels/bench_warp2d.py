"""Benchmark warp2d at the default renderer's shapes (512x512x3 uint8 frames, 64x64 coarse flow,
96x160 RGBA tile): torch reference, torch.compile of it, the Triton kernel, and a plain
`out.copy_(src)` of the output's size as the bandwidth yardstick.

    python benchmarks/kernels/bench_warp2d.py --out benchmarks/results/kernels.csv
"""

from functools import partial

import torch
from _common import Results, chosen, measure_ms, parser

from talkingface.kernels.image_warp import warp2d_reference, warp2d_triton

SIZE, CHANNELS, COARSE, TILE = 512, 3, 64, (96, 160)
SHAPE = (SIZE, SIZE, CHANNELS)


def _inputs(batch: int, device: torch.device):
    """One portrait broadcast over `batch` frames, as the renderer calls it."""
    gen = torch.Generator().manual_seed(0)
    image = torch.randint(0, 256, (1, *SHAPE), generator=gen, dtype=torch.uint8)
    flow = torch.randn(batch, COARSE, COARSE, 2, generator=gen) * 4
    tile = torch.rand(batch, *TILE, 4, generator=gen)
    tile[..., :3] *= 255
    origin = torch.tensor([[300, 176]]).expand(batch, 2).contiguous()
    return tuple(t.to(device) for t in (image, flow, tile, origin))


def main() -> None:
    p = parser(__doc__)
    p.add_argument(
        "--batches", type=int, nargs="+", help="frames per call (default: 1 32 on CUDA, 1 8 on CPU)"
    )
    args = p.parse_args()
    device = torch.device(args.device)
    cuda = device.type == "cuda"
    available = ["torch", "torch.compile", "copy"] + (["triton"] if cuda else [])
    # torch.compile and triton are GPU stories; on CPU time the CPU path itself by default.
    providers = chosen(args.providers, available, available if cuda else ["torch", "copy"])
    warps = {"torch": warp2d_reference, "triton": warp2d_triton}
    if "torch.compile" in providers:
        warps["torch.compile"] = torch.compile(warp2d_reference, dynamic=False)
    results = Results(device)
    for batch in args.batches or ([1, 32] if cuda else [1, 8]):
        inputs = _inputs(batch, device)
        out = torch.empty(batch, *SHAPE, dtype=torch.uint8, device=device)
        moved = sum(t.numel() * t.element_size() for t in (*inputs, out))
        with torch.no_grad():
            for provider in providers:
                if provider == "copy":
                    # Real data: untouched pages would read as one shared zero page.
                    src = torch.randint_like(out, 256)
                    ms = measure_ms(partial(out.copy_, src), device)
                    note = "bandwidth reference: output-size copy"
                    results.add(
                        "copy", "torch", SHAPE, torch.uint8, batch, ms, 2 * out.numel(), note
                    )
                    continue
                ms = measure_ms(partial(warps[provider], *inputs), device)
                note = f"flow {COARSE}x{COARSE}, tile {TILE[0]}x{TILE[1]}"
                results.add("warp2d", provider, SHAPE, torch.uint8, batch, ms, moved, note)
    results.write(args.out)


if __name__ == "__main__":
    main()
