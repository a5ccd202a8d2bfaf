"""Dataset build throughput: clips per minute over a folder of videos, for each executor and
worker count, repeated; prints a Markdown table of medians (the numbers in benchmarks/README).

    python benchmarks/bench_dataset.py /path/to/videos --workers 1 2 --repeats 3
    python benchmarks/bench_dataset.py /path/to/videos --copies 4   # each video 4 times
    python benchmarks/bench_dataset.py /path/to/videos --executor ray --workers 2
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
from pathlib import Path

from talkingface.dataset import BuildSettings, build_dataset


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("videos", help="folder of talking videos")
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--executor", choices=("process", "ray"), default="process")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--encoder", default="visemes")
    parser.add_argument("--max-seconds", type=float)
    parser.add_argument(
        "--copies",
        type=int,
        default=1,
        help="link each video this many times (more clips amortise the workers' start-up)",
    )
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        videos = Path(args.videos)
        if args.copies > 1:
            for path in sorted(p for p in videos.iterdir() if p.is_file()):
                for k in range(args.copies):
                    (Path(folder) / f"{path.stem}_{k}{path.suffix}").symlink_to(path.resolve())
            videos = Path(folder)
        measure(videos, args)


def measure(videos: Path, args: argparse.Namespace) -> None:
    settings = BuildSettings(encoder=args.encoder, max_seconds=args.max_seconds)
    print(f"{os.cpu_count()} CPUs; executor {args.executor}; encoder {args.encoder}")
    print("| workers | clips | wall s (median) | clips/min (median) | runs (clips/min) |")
    print("|---|---|---|---|---|")
    for workers in args.workers:
        rates, walls, clips = [], [], 0
        for _ in range(args.repeats):
            with tempfile.TemporaryDirectory() as out:
                report = build_dataset(
                    videos, out, settings, executor=args.executor, workers=workers, progress=False
                )
            if report.failed:
                raise SystemExit(f"clips failed: {report.failed}")
            clips = len(report.built) + len(report.skipped_now)
            rates.append(report.clips_per_minute)
            walls.append(report.wall_s)
        print(
            f"| {workers} | {clips} | {statistics.median(walls):.1f} | "
            f"{statistics.median(rates):.1f} | {', '.join(f'{r:.1f}' for r in rates)} |",
            flush=True,
        )


if __name__ == "__main__":
    main()
