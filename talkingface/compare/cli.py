"""The ``talkingface compare`` subcommand: variants × inputs -> metrics table, CSV, JSON, HTML."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

EXAMPLES = """\
examples:
  # two audio encoders and a deliberately broken variant on real talking videos
  talkingface compare --data evaldata/video --output cmp \\
      --variant visemes=audio=visemes --variant energy=audio=energy \\
      --variant broken=audio_shift_frames=10
  # self-reenactment: each real video's first frame driven by the video's own motion,
  # next to the audio-driven default pipeline, scored against the real frames
  talkingface compare --data evaldata/video --output cmp --max-seconds 4 \\
      --variant reenact=motion=video --variant audio=
  # every portrait with every clip, the default pipeline against a preset with overrides
  talkingface compare --data mydata --inputs pairs --output cmp \\
      --variant default= --variant "calm=default controls.head_motion=0.5"

A variant is NAME=OVERRIDES: whitespace-separated KEY=VALUE config overrides plus at most one
preset name or YAML file (empty = the default pipeline). Two keys belong to compare itself:
audio_shift_frames=N (delay the driving audio by N frames) and mute_audio=true (drive with
silence); metrics still use the original audio, so such variants must score worse.

Real videos are also self-reenactment tests: the video's first frame is the portrait and every
variant's frames are scored against the real ones (PSNR, SSIM, LPIPS when a local model is
installed, landmark errors of all points, lips and eyes in inter-ocular distances). A variant
with motion=video and no motion.params.path takes its motion from each real video it runs on
(the video's own motion), so video-driven and audio-driven variants sit in one table; the
report shows the frames side by side (real | each variant).
"""


def add_parser(subparsers) -> argparse.ArgumentParser:
    """Add ``compare`` to the ``talkingface`` command's subparsers."""
    p = subparsers.add_parser(
        "compare",
        help="run pipeline variants on the same inputs and compare quality and speed",
        description="Run every variant on every input with the same seed; measure lip sync, "
                    "motion, fidelity and speed without downloaded weights; write "
                    "results.csv (long format), results.json and report.html to --output "
                    "and print a table. A failing variant or input is a row, not a crash.",
        epilog=EXAMPLES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--data", type=Path, required=True,
                   help="folder of real talking videos (ground truth), or of portraits and "
                        "clips (also looks in its video/, images/ and audio/ subfolders)")
    p.add_argument("--variant", "-V", action="append", default=[], metavar="NAME=OVERRIDES",
                   help="a pipeline variant (repeat); default: one variant 'default='")
    p.add_argument("--output", "-o", type=Path, default=Path("compare_out"),
                   help="folder for results.csv, results.json, report.html "
                        "(default: %(default)s)")
    p.add_argument("--inputs", choices=("auto", "videos", "pairs"), default="auto",
                   help="what --data holds: real videos, or portraits + clips; auto = videos "
                        "if there are any (default: %(default)s)")
    p.add_argument("--pairing", choices=("all", "zip"), default="all",
                   help="portraits + clips: every portrait with every clip, or the i-th with the "
                        "i-th by name (default: %(default)s)")
    p.add_argument("--pair", action="append", default=[], metavar="PORTRAIT:CLIP",
                   help="an explicit portrait + clip pair (repeat); replaces --pairing")
    p.add_argument("--portrait", type=Path,
                   help="real videos: drive this portrait instead of each video's first frame; "
                        "pairs: use only this portrait")
    p.add_argument("--max-seconds", type=float,
                   help="use only the first N seconds of every clip (faster)")
    p.add_argument("--seed", type=int, default=0,
                   help="seed given to every variant (default: %(default)s)")
    p.add_argument("--no-stream-latency", action="store_true",
                   help="skip the short streaming run that measures start latency")
    p.add_argument("--align-real", action="store_true",
                   help="first take each real video's own audio-visual offset (estimated from "
                        "its mouth vs its loudness) out of it; only for videos known to be "
                        "offset: on short clips the estimate is unreliable and favours "
                        "loudness-driven variants (default: the files' own timing)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.set_defaults(handler=main)
    return p


def main(args: argparse.Namespace) -> int:
    """Run the comparison; exit 0 when every run succeeded, 1 when some failed (the report
    is written either way)."""
    from talkingface.compare.report import terminal_table, write_all
    from talkingface.compare.runner import ComparisonRunner, discover_inputs, parse_variant

    variants = [parse_variant(v) for v in (args.variant or ["default="])]
    inputs = discover_inputs(
        args.data,
        mode=args.inputs,
        pairing=args.pairing,
        pairs=args.pair,
        portrait=args.portrait,
        max_seconds=args.max_seconds,
    )
    print(f"comparing {len(variants)} variants on {len(inputs)} inputs", file=sys.stderr)
    comp = ComparisonRunner(
        variants,
        inputs,
        seed=args.seed,
        stream_latency=not args.no_stream_latency,
        align_real=args.align_real,
        progress=not args.no_progress,
    ).run()
    paths = write_all(comp, args.output)
    print(terminal_table(comp))
    print(f"wrote {', '.join(str(p) for p in paths.values())}", file=sys.stderr)
    failed = [r for r in comp.records if r.status != "ok"]
    if failed:
        print(f"{len(failed)} of {len(comp.records)} runs failed (see the status column)",
              file=sys.stderr)
    return 1 if failed else 0
