"""Shared timing and CSV output of the kernel benchmarks: `triton.testing.do_bench` on CUDA,
a perf_counter median on CPU (recorded in the CSV's `timer` column)."""

import argparse
import csv
import datetime
import platform
import statistics
import time
from pathlib import Path

import torch

FIELDS = [
    "date",
    "device",
    "timer",
    "op",
    "provider",
    "shape",
    "dtype",
    "batch",
    "ms",
    "ms_per_item",
    "gb_per_s",
    "note",
]


def parser(description: str) -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=description)
    p.add_argument("--out", type=Path, help="CSV file to write (appended if it exists)")
    p.add_argument(
        "--device",
        default="cuda" if torch.cuda.is_available() else "cpu",
        help="cuda or cpu (default: cuda when available)",
    )
    p.add_argument(
        "--providers",
        nargs="+",
        help="subset of providers to run (default: all that run on the device)",
    )
    return p


def add_dtype_args(p: argparse.ArgumentParser, cuda_dtypes: list[str]) -> None:
    """``--batch`` and ``--dtypes`` (default ``cuda_dtypes`` on CUDA, float32 on CPU)."""
    p.add_argument("--batch", type=int, default=1)
    p.add_argument(
        "--dtypes",
        nargs="+",
        choices=["float32", "float16", "bfloat16"],
        help=f"default: {', '.join(cuda_dtypes)} on CUDA, float32 on CPU",
    )
    p.set_defaults(cuda_dtypes=cuda_dtypes)


def resolve_run(args) -> tuple[torch.device, list[str], list[torch.dtype]]:
    """Device, providers (triton only on CUDA; torch only on CPU by default) and dtypes."""
    device = torch.device(args.device)
    cuda = device.type == "cuda"
    available = ["torch", "torch.compile"] + (["triton"] if cuda else [])
    providers = chosen(args.providers, available, available if cuda else ["torch"])
    names = args.dtypes or (args.cuda_dtypes if cuda else ["float32"])
    return device, providers, [getattr(torch, d) for d in names]


def device_name(device: torch.device) -> str:
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    return f"cpu: {_cpu_model()} ({torch.get_num_threads()} threads)"


def _cpu_model() -> str:
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.exists():
        for line in cpuinfo.read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    return platform.processor() or platform.machine()


def timer_name(device: torch.device) -> str:
    return "triton.testing.do_bench median" if device.type == "cuda" else "perf_counter median"


def measure_ms(fn, device: torch.device, cpu_reps: int = 20) -> float:
    """Median milliseconds per call of `fn`."""
    if device.type == "cuda":
        import triton.testing

        return triton.testing.do_bench(fn, warmup=25, rep=100, return_mode="median")
    for _ in range(3):
        fn()
    times = []
    for _ in range(cpu_reps):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times) * 1e3


class Results:
    """Rows of one benchmark run, printed as they come and written to CSV at the end."""

    def __init__(self, device: torch.device):
        self.device = device
        self.rows: list[dict] = []
        self.stamp = {
            "date": datetime.date.today().isoformat(),
            "device": device_name(device),
            "timer": timer_name(device),
        }

    def add(self, op, provider, shape, dtype, batch, ms, bytes_moved=None, note=""):
        row = {
            **self.stamp,
            "op": op,
            "provider": provider,
            "shape": "x".join(str(s) for s in shape),
            "dtype": str(dtype).removeprefix("torch."),
            "batch": batch,
            "ms": f"{ms:.4f}",
            "ms_per_item": f"{ms / batch:.4f}",
            "gb_per_s": "" if bytes_moved is None else f"{bytes_moved / ms / 1e6:.1f}",
            "note": note,
        }
        self.rows.append(row)
        print(
            f"{op:16} {provider:14} {row['shape']:>18} {row['dtype']:8} B={batch:<3} "
            f"{ms:9.3f} ms  {ms / batch:8.3f} ms/item  {row['gb_per_s'] or '-':>7} GB/s  {note}"
        )

    def write(self, path: Path | None) -> None:
        print(f"# {self.stamp['device']}, {self.stamp['date']}, timer: {self.stamp['timer']}")
        if path is None:
            return
        path.parent.mkdir(parents=True, exist_ok=True)
        new = not path.exists()
        with path.open("a", newline="") as f:
            writer = csv.DictWriter(f, fieldnames=FIELDS)
            if new:
                writer.writeheader()
            writer.writerows(self.rows)
        print(f"# wrote {len(self.rows)} rows to {path}")


def chosen(providers: list[str] | None, available: list[str], default: list[str]) -> list[str]:
    """The requested providers (`default` if none were), checked against `available`."""
    if providers is None:
        return default
    unknown = set(providers) - set(available)
    if unknown:
        raise SystemExit(f"providers {sorted(unknown)} cannot run here; choose from {available}")
    return [p for p in available if p in providers]
