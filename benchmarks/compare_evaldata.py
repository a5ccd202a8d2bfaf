"""Full comparison on the evaluation data: pipeline variants on the real talking videos (lip
sync against ground truth, motion, fidelity, speed) and, with ``--pairs``, on portrait + clip
pairs (motion, fidelity and speed; no ground truth there).

    python benchmarks/compare_evaldata.py --data ../shared/evaldata --output bench_out/compare
    python benchmarks/compare_evaldata.py --pairs --max-seconds 6 -V default= -V calm=calm

Writes ``results.csv``, ``results.json`` and ``report.html`` per input set into ``--output``
(``videos/`` and ``pairs/``) and prints the tables with the machine they ran on.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

DEFAULT_DATA = Path(__file__).resolve().parents[1] / ".." / "shared" / "evaldata"

VARIANTS = (
    "default=",
    "energy=audio=energy",
    "broken_shift10=audio_shift_frames=10",
)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--data", type=Path, default=DEFAULT_DATA,
                   help="evaluation data folder with video/, images/, audio/ "
                        "(default: %(default)s)")
    p.add_argument("--output", type=Path, default=Path("bench_out/compare"))
    p.add_argument("-V", "--variant", action="append", metavar="NAME=OVERRIDES",
                   help=f"a variant (repeat); default: {' '.join(VARIANTS)}")
    p.add_argument("--pairs", action="store_true",
                   help="also run every portrait in images/ with every clip in audio/")
    p.add_argument("--no-videos", action="store_true", help="skip the real videos")
    p.add_argument("--max-seconds", type=float, help="use the first N seconds of each clip")
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args(argv)

    from talkingface.compare.report import terminal_table, write_all
    from talkingface.compare.runner import ComparisonRunner, discover_inputs, parse_variant

    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from lipsync import device_line

    variants = [parse_variant(v) for v in (args.variant or VARIANTS)]
    sets = [] if args.no_videos else ["videos"]
    sets += ["pairs"] if args.pairs else []
    failed = 0
    for name in sets:
        inputs = discover_inputs(args.data, mode=name, max_seconds=args.max_seconds)
        comp = ComparisonRunner(variants, inputs, seed=args.seed).run()
        paths = write_all(comp, args.output / name)
        print(f"\n== {name}: {len(variants)} variants x {len(inputs)} inputs "
              f"({device_line()})\n{terminal_table(comp)}\n-> {paths['html']}")
        failed += sum(r.status != "ok" for r in comp.records)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
