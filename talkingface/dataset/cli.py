"""The ``talkingface dataset`` subcommand: ``build`` turns a folder of talking videos into a
dataset. Arguments and printing only: the work is :func:`talkingface.dataset.build_dataset`."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

EXAMPLES = """\
examples:
  # every video under clips/ -> my_dataset/ (manifest.json + clips/*.safetensors), 2 processes
  talkingface dataset build clips/ --out my_dataset --workers 2
  # energy features instead of visemes, first 10 s of each video, 30 fps rows
  talkingface dataset build clips/ --out ds_energy --encoder energy --fps 30 --max-seconds 10
  # on a Ray cluster (run on a node of it; every node must see clips/ at the same path)
  talkingface dataset build /shared/clips --out /shared/ds --executor ray --address auto

Rerunning the same command resumes: clips already built are kept, and so are videos skipped
for a reason (no face, no audio) unless --retry-skipped. Read a dataset back in Python with
talkingface.dataset.Dataset(path).
"""


def add_parser(subparsers) -> argparse.ArgumentParser:
    """Add ``dataset`` (with ``build``) to the ``talkingface`` command's subparsers."""
    p = subparsers.add_parser(
        "dataset",
        help="build a training dataset (motion + audio features) from real videos",
        description="Turn real talking videos into a training dataset.",
    )
    sub = p.add_subparsers(dest="dataset_command", metavar="ACTION", required=True)
    b = sub.add_parser(
        "build",
        help="extract motion, audio features and portrait frames from every video",
        description="For every video under VIDEOS_DIR: the motion track (head pose, "
        "expression, confidence, landmarks), the audio encoder's features of its "
        "sound, the sound itself and a few portrait frames, all aligned to --fps, "
        "written as one safetensors file per clip plus a JSON manifest "
        "(talkingface-dataset version 1). Unusable videos are skipped with the "
        "reason in the manifest; an interrupted build resumes where it stopped.",
        epilog=EXAMPLES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    b.add_argument(
        "videos",
        type=Path,
        metavar="VIDEOS_DIR",
        help="folder of talking videos with sound (searched recursively)",
    )
    b.add_argument(
        "--out",
        "-o",
        type=Path,
        required=True,
        metavar="DATASET",
        help="dataset folder (created; an existing one is resumed)",
    )
    b.add_argument(
        "--encoder",
        default="visemes",
        help="audio encoder whose features are stored (`talkingface plugins` lists "
        "them: visemes, energy, mel, ...; default: %(default)s)",
    )
    b.add_argument(
        "--encoder-param",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="a config field of the encoder (repeat), as audio.params.KEY",
    )
    b.add_argument(
        "--fps",
        type=float,
        default=25.0,
        help="rows per second of motion and features (default: %(default)s)",
    )
    b.add_argument(
        "--smoothing",
        default="default",
        help="motion smoothing of the extractor (default: %(default)s)",
    )
    b.add_argument(
        "--reference-frames",
        type=int,
        default=4,
        help="portrait frames kept per clip: the first, then evenly spaced (default: %(default)s)",
    )
    b.add_argument(
        "--reference-size",
        type=int,
        default=512,
        help="longest side of the kept portrait frames, px (default: %(default)s)",
    )
    b.add_argument("--max-seconds", type=float, help="use only the first N seconds of every video")
    b.add_argument(
        "--min-face",
        type=float,
        default=0.5,
        help="skip a video whose frames show a face less often than this fraction "
        "(default: %(default)s)",
    )
    b.add_argument(
        "--executor",
        choices=("process", "ray"),
        default="process",
        help="process: a local process pool; ray: Ray tasks (pip install "
        "'talkingface[ray]'); default: %(default)s",
    )
    b.add_argument(
        "--workers",
        type=int,
        help="processes (process executor; default: CPU count, at most 4; 1 runs "
        "in this process), or CPUs of a local Ray (ray without --address)",
    )
    b.add_argument(
        "--address",
        help="Ray cluster to use: auto (the one this node is in) or "
        "ray://HOST:10001; default: start a local Ray",
    )
    b.add_argument(
        "--retry-skipped", action="store_true", help="try again the videos an earlier run skipped"
    )
    b.add_argument("--no-progress", action="store_true", help="no progress bar")
    b.set_defaults(handler=main_build)
    return p


def _encoder_params(items: list[str]) -> dict:
    import yaml

    from talkingface.pipeline.errors import InputError

    params = {}
    for item in items:
        key, eq, value = item.partition("=")
        if not eq or not key:
            raise InputError(f"--encoder-param {item!r} is not KEY=VALUE")
        params[key.strip()] = yaml.safe_load(value)
    return params


def main_build(args: argparse.Namespace) -> int:
    """Build; exit 0 when every video was built or skipped for a reason, 1 when some failed
    unexpectedly (they are retried by the next run)."""
    from talkingface.dataset import BuildSettings, build_dataset

    settings = BuildSettings(
        fps=args.fps,
        encoder=args.encoder,
        encoder_params=_encoder_params(args.encoder_param),
        smoothing=args.smoothing,
        reference_frames=args.reference_frames,
        reference_size=args.reference_size,
        max_seconds=args.max_seconds,
        min_face=args.min_face,
    )
    report = build_dataset(
        args.videos,
        args.out,
        settings,
        executor=args.executor,
        workers=args.workers,
        address=args.address,
        retry_skipped=args.retry_skipped,
        progress=not args.no_progress and sys.stderr.isatty(),
    )
    for clip_id, reason in sorted(report.skipped.items()):
        print(f"skipped {clip_id}: {reason}", file=sys.stderr)
    for clip_id, reason in sorted(report.failed.items()):
        print(f"failed {clip_id}: {reason}", file=sys.stderr)
    rate = report.clips_per_minute
    print(
        f"{args.out}: {len(report.built)} clips built, {len(report.reused)} already there, "
        f"{len(report.skipped)} skipped, {len(report.failed)} failed in {report.wall_s:.1f} s"
        + (f" ({rate:.1f} clips/min)" if rate == rate else ""),
        file=sys.stderr,
    )
    return 1 if report.failed else 0
