"""Speed of our LivePortrait networks at the published size (256² crops, 512² output), per
module: F (appearance), M (motion), W (warp), G (SPADE decoder), the three retargeting MLPs
and warp + decode together (the per-frame cost of rendering), for each kernel backend and dtype.

    python benchmarks/bench_liveportrait.py --out lp.csv              # GPU: everything, < 5 min
    python benchmarks/bench_liveportrait.py --device cpu --batch 1 --reps 3

On CUDA the default runs backends torch and triton, dtypes float32, float16 and bfloat16, plus
`torch.compile` of W and G (float16, torch backend; `--compile-backends torch triton` adds the
compiled Triton path); times are CUDA-synchronised medians. On CPU the default is torch /
float32 (Triton's CPU interpreter is for tests, not speed). Weights are random
(`LivePortraitModels.from_config`): speed does not depend on their values. The CSV (appended to
when it exists) records the device name with every row; a row whose call fails (say, a compile)
is printed with its error and recorded as NaN, and the run goes on.
"""

from __future__ import annotations

import argparse
import csv
import datetime
import platform
import statistics
import sys
import time
from pathlib import Path

import torch

from talkingface.plugins.render.liveportrait import FULL_CONFIG, SMALL_CONFIG, LivePortraitModels

FIELDS = [
    "date",
    "device",
    "module",
    "backend",
    "dtype",
    "compiled",
    "batch",
    "ms_per_batch",
    "ms_per_frame",
    "frames_per_s",
    "reps",
]


def device_name(device: torch.device) -> str:
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    model = platform.processor() or platform.machine()
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.exists():
        for line in cpuinfo.read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    return f"cpu: {model} ({torch.get_num_threads()} threads)"


def median_ms(fn, device: torch.device, reps: int, warmup: int) -> float:
    """Median wall time of `fn()` in ms (CUDA-synchronised)."""
    for _ in range(warmup):
        fn()
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    times = []
    for _ in range(reps):
        start = time.perf_counter()
        fn()
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        times.append((time.perf_counter() - start) * 1e3)
    return statistics.median(times)


def module_calls(models: LivePortraitModels, batch: int, device, dtype) -> dict:
    """Module name -> a zero-argument call on inputs of the models' sizes."""
    config = models.config
    gen = torch.Generator().manual_seed(0)
    size, num_kp = config.input_size, config.motion.num_kp
    image = torch.rand(batch, 3, size, size, generator=gen).to(device, dtype)
    volume = (torch.randn(batch, *config.volume_shape, generator=gen) * 0.5).to(device, dtype)
    kp_source = (torch.rand(batch, num_kp, 3, generator=gen) * 1.6 - 0.8).to(device, dtype)
    kp_driving = kp_source + 0.05 * torch.randn(batch, num_kp, 3, generator=gen).to(device, dtype)
    side = config.volume_shape[2]
    features = torch.randn(batch, config.warping.out_channels, side, side, generator=gen)
    features = features.to(device, dtype)
    mlp_inputs = {
        name: torch.randn(batch, getattr(config.retargeting, name).input_size, generator=gen).to(
            device, dtype
        )
        for name in ("stitching", "lip", "eye")
    }

    def mlps():
        for name, x in mlp_inputs.items():
            getattr(models, f"{name}_mlp")(x)

    return {
        "F appearance": lambda: models.appearance_feature_extractor(image),
        "M motion": lambda: models.motion_extractor(image),
        "W warp": lambda: models._warp(volume, kp_source, kp_driving),
        "G decode": lambda: models._decode(features),
        "MLPs (stitch+lip+eye)": mlps,
        "warp+decode": lambda: models.warp_decode(volume, kp_source, kp_driving),
    }


def main(argv: list[str] | None = None) -> int:
    cuda = torch.cuda.is_available()
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--device", default="cuda" if cuda else "cpu")
    parser.add_argument("--batch", type=int, help="frames per call (default: 8 CUDA, 1 CPU)")
    parser.add_argument("--reps", type=int, help="timed calls per row (default: 10 CUDA, 3 CPU)")
    parser.add_argument(
        "--warmup", type=int, help="untimed calls first (default: 2 CUDA, 3 compiled; 0 CPU)"
    )
    parser.add_argument("--backends", nargs="+", choices=["torch", "triton"])
    parser.add_argument("--dtypes", nargs="+", choices=["float32", "float16", "bfloat16"])
    parser.add_argument(
        "--compile-dtypes",
        nargs="*",
        choices=["float32", "float16", "bfloat16"],
        help="dtypes that also get torch.compile rows for W, G and warp+decode (default: "
        "float16 on CUDA, none on CPU; pass the flag alone for none)",
    )
    parser.add_argument(
        "--compile-backends",
        nargs="+",
        choices=["torch", "triton"],
        default=["torch"],
        help="kernel backends that get the torch.compile rows (default: torch; each compile of "
        "W and G takes a minute or more)",
    )
    parser.add_argument("--modules", nargs="+", help="subset of module names (default: all)")
    parser.add_argument(
        "--config",
        choices=["full", "small"],
        default="full",
        help="network sizes: the published ones (default) or the test config (a smoke run)",
    )
    parser.add_argument("--out", type=Path, help="CSV file (appended to if it exists)")
    args = parser.parse_args(argv)

    device = torch.device(args.device)
    on_gpu = device.type == "cuda"
    batch = args.batch or (8 if on_gpu else 1)
    reps = args.reps or (10 if on_gpu else 3)
    backends = args.backends or (["torch", "triton"] if on_gpu else ["torch"])
    dtypes = args.dtypes or (["float32", "float16", "bfloat16"] if on_gpu else ["float32"])
    compile_dtypes = (
        args.compile_dtypes if args.compile_dtypes is not None else (["float16"] if on_gpu else [])
    )
    name = device_name(device)
    date = datetime.date.today().isoformat()
    print(f"device: {name}; batch {batch}; {reps} reps; torch {torch.__version__}")

    rows = []
    torch.set_grad_enabled(False)
    config = FULL_CONFIG if args.config == "full" else SMALL_CONFIG
    base = LivePortraitModels.from_config(config, seed=0)
    for dtype_name in dtypes:
        dtype = getattr(torch, dtype_name)
        models = base.to(device=device, dtype=dtype)
        for backend in backends:
            models.set_kernel_backend(backend)
            compile_here = dtype_name in compile_dtypes and backend in args.compile_backends
            for compiled in [False] + ([True] if compile_here else []):
                models.compiled = compiled
                calls = module_calls(models, batch, device, dtype)
                for module, fn in calls.items():
                    if args.modules and module not in args.modules:
                        continue
                    if compiled and module not in ("W warp", "G decode", "warp+decode"):
                        continue
                    if backend == "triton" and module not in ("W warp", "G decode", "warp+decode"):
                        continue  # F, M and the MLPs call no kernel: one row per dtype is enough
                    warmup = args.warmup if args.warmup is not None else (3 if compiled else 2)
                    if not on_gpu and not compiled and args.warmup is None:
                        warmup = 0  # eager CPU kernels need no warm-up; a full-size call is slow
                    try:
                        ms = median_ms(fn, device, reps, warmup)
                    except Exception as exc:  # one failing row (e.g. a compile) keeps the rest
                        print(f"{module} {backend} {dtype_name} compiled={compiled}: {exc!r}")
                        ms = float("nan")
                    row = {
                        "date": date,
                        "device": name,
                        "module": module,
                        "backend": backend
                        if module in ("W warp", "G decode", "warp+decode")
                        else "-",
                        "dtype": dtype_name,
                        "compiled": compiled,
                        "batch": batch,
                        "ms_per_batch": round(ms, 3),
                        "ms_per_frame": round(ms / batch, 3),
                        "frames_per_s": round(1e3 * batch / ms, 2),
                        "reps": reps,
                    }
                    rows.append(row)
                    print(
                        f"{module:<22} {row['backend']:<7} {dtype_name:<9} "
                        f"{'compiled' if compiled else 'eager':<9} {row['ms_per_frame']:>10.2f} "
                        f"ms/frame {row['frames_per_s']:>9.2f} frames/s",
                        flush=True,
                    )
        models.compiled = False
        base = models.to(device="cpu", dtype=torch.float32)

    if args.out:
        new = not args.out.exists()
        with args.out.open("a", newline="") as f:
            writer = csv.DictWriter(f, fieldnames=FIELDS)
            if new:
                writer.writeheader()
            writer.writerows(rows)
        print(f"wrote {len(rows)} rows to {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
