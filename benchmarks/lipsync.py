"""Lip-sync benchmark: drive a portrait with each real video's audio and correlate the mouth
opening of the generated frames with the real video's, for several audio encoders and for
deliberately broken variants that must score clearly worse.

    python benchmarks/lipsync.py --data ../shared/evaldata --output bench_out/lipsync

Writes ``lipsync.csv``, ``lipsync.md`` (the tables, with the machine) and the full
``talkingface compare`` outputs (``results.csv``, ``results.json``, ``report.html``) into
``--output``/videos (and ``--output``/tts with ``--tts``: espeak-ng speech with known phones,
for the bilabial-closure rate; with ``--asr-phones`` the same rate on the real videos' speech,
with phones found by PocketSphinx). The real videos are taken at their own timing (the ±3-frame
lag search absorbs small offsets). Exits 1 when a broken variant is not ranked below the
default.
"""

from __future__ import annotations

import argparse
import csv
import functools
import math
import os
import platform
import sys
from pathlib import Path

import numpy as np

DEFAULT_DATA = Path(__file__).resolve().parents[1] / ".." / "shared" / "evaldata"

VARIANTS = (
    "visemes=audio=visemes",
    "sphinx=sphinx",
    "energy=audio=energy",
    "broken_shift10=sphinx audio_shift_frames=10",
    "broken_still=sphinx mute_audio=true",
)
"""The default pipeline's phonetic encoder (``visemes``, streams with low latency), the offline
PocketSphinx preset, the loudness-only encoder, and the PocketSphinx preset broken twice: its
audio 10 frames late, and a mouth that never moves."""

SENTENCES = (
    "Maybe my mom made a big apple pie.",
    "Bob put the purple ball by the moped, please.",
    "Bring me a map of the empire before lunch.",
)
"""Synthetic speech for ``--tts``: many bilabials (p, b, m), whose lips must close."""

REFERENCE = "sphinx"
MARGIN = 0.1
"""'Clearly below': a broken variant's mouth r is lower than the reference's on every video and
lower by at least this much on average."""


def device_line() -> str:
    import torch

    gpu = torch.cuda.get_device_name(0) if torch.cuda.is_available() else "no GPU"
    return (f"{platform.processor() or platform.machine()}, {os.cpu_count()} CPU cores, "
            f"torch {torch.__version__} ({torch.get_num_threads()} threads), {gpu}")


def tts_inputs(portrait: Path | None):
    """Espeak-ng sentences with exact phone timings (dev-time: needs the Debian package
    espeak-ng), each padded with 0.5 s of silence before and 0.6 s after."""
    import torch

    from talkingface.assets import demo_portrait
    from talkingface.compare.metrics import Phone
    from talkingface.compare.runner import CompareInput, LoadedInput
    from talkingface.io import load_image
    from talkingface.pipeline.contracts import Audio

    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "scripts"))
    try:
        from make_viseme_data import ESPEAK_RATE, Espeak

        tts = Espeak()
    except (ImportError, OSError) as exc:
        raise SystemExit(f"--tts needs espeak-ng (apt-get install espeak-ng): {exc}") from None
    image = load_image(portrait) if portrait is not None else demo_portrait()
    lead, tail = int(0.5 * ESPEAK_RATE), int(0.6 * ESPEAK_RATE)
    items = []
    for i, text in enumerate(SENTENCES):
        speech, events = tts.say(text, "en-us", 150, 50, 50)
        x = np.concatenate([np.zeros(lead), speech, np.zeros(tail)]).astype(np.float32)
        starts = [(lead + s) / ESPEAK_RATE for s, _ in events]
        ends = [*starts[1:], (lead + len(speech)) / ESPEAK_RATE]
        phones = [Phone(ipa, a, b) for (_, ipa), a, b in zip(events, starts, ends, strict=True)]
        loaded = LoadedInput(image, Audio(torch.from_numpy(x), ESPEAK_RATE), phones=phones)
        items.append(CompareInput(f"tts{i + 1}", lambda loaded=loaded: loaded, "pair"))
    return items


def asr_phones(audio) -> list:
    """Phone timings of English speech, found by PocketSphinx 5 through the ``sphinx``
    encoder's decoder (the words recognised with its language model, then force-aligned phone
    by phone; the whole clip as one utterance). Dev-time: ``pip install pocketsphinx==5.1.1``,
    which ships its en-US models. Nobody checked these phones: the real video's own lips
    closing on the p/b/m found (its row in the table) says how far to trust them. They come
    from the same recogniser as the ``sphinx`` variant, so its closure rate is measured on its
    own phone timings (the rendering and the rules are what that rate tests there)."""
    from talkingface.compare.metrics import Phone
    from talkingface.io import resample
    from talkingface.plugins.audio.sphinx import FRAME_S

    encoder = _recogniser()
    x = audio.samples.float()
    x = x.mean(dim=0) if x.ndim == 2 else x
    x = resample(x, audio.sample_rate, encoder.sample_rate)
    return [Phone(name, start * FRAME_S, (start + count) * FRAME_S)
            for name, start, count in encoder.phones(x)]


@functools.cache
def _recogniser():
    from talkingface.plugins.audio.sphinx import SphinxEncoder

    encoder = SphinxEncoder()
    encoder.ensure_loaded()
    return encoder


def with_asr_phones(inputs):
    """The real-video inputs again, each with the phone timings PocketSphinx finds in its audio
    (for the bilabial-closure rate on real speech)."""
    import dataclasses

    from talkingface.compare.runner import CompareInput

    try:
        import pocketsphinx  # noqa: F401
    except ImportError:
        raise SystemExit("--asr-phones needs PocketSphinx: pip install pocketsphinx==5.1.1") \
            from None

    def loader(item):
        def load():
            loaded = item.load()
            return dataclasses.replace(loaded, phones=asr_phones(loaded.audio))

        return load

    return [CompareInput(i.name, loader(i), i.kind) for i in inputs]


def closure_table(comp, title: str) -> list[str]:
    """Markdown lines: bilabial closure (per input and mean), silent-lip stability and AV
    offset per variant (and the real videos, where there are some)."""
    from talkingface.compare.report import summary

    def fmt(v: float) -> str:
        return "-" if not math.isfinite(v) else f"{v:.3f}"

    closure: dict[tuple[str, str], float] = {
        (r.variant, r.input): r.value for r in comp.rows if r.metric == "bilabial_closure"}
    summ = summary(comp)
    lines = ["", f"## {title}", "",
             "| variant | " + " | ".join(f"closure {i}" for i in comp.inputs)
             + " | mean bilabial closure | silent lip std (% face h) | AV offset (ms) | AV r |",
             "|---|" + "---|" * (len(comp.inputs) + 4)]
    for name, m in summ.items():
        per = [closure.get((name, i), math.nan) for i in comp.inputs]
        vals = [m.get(k, math.nan) for k in ("bilabial_closure", "silent_lip_std",
                                              "av_offset_ms", "av_corr")]
        lines.append(f"| {name} | " + " | ".join(fmt(v) for v in per + vals) + " |")
    failed = [f"{r.variant}/{r.input}: {r.error}" for r in comp.records if r.status != "ok"]
    lines += [f"- failed: {f}" for f in failed]
    return lines


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--data", type=Path, default=DEFAULT_DATA,
                   help="evaluation data folder with video/ (default: %(default)s)")
    p.add_argument("--output", type=Path, default=Path("bench_out/lipsync"))
    p.add_argument("--portrait", type=Path,
                   help="drive this portrait (default: each video's first frame)")
    p.add_argument("--variant", action="append", metavar="NAME=OVERRIDES",
                   help="replace the default variants (repeat)")
    p.add_argument("--max-seconds", type=float, help="use the first N seconds of each video")
    p.add_argument("--tts", action="store_true",
                   help="also drive the portrait (default: the built-in demo) with espeak-ng "
                        "sentences whose phone timings are known: bilabial closure rate")
    p.add_argument("--no-videos", action="store_true", help="skip the real videos")
    p.add_argument("--asr-phones", action="store_true",
                   help="find the phones of each real video's speech with PocketSphinx "
                        "(pip install pocketsphinx==5.1.1): bilabial closure on real speech")
    p.add_argument("--align-real", action="store_true",
                   help="take each real video's loudness-estimated AV offset out first "
                        "(see talkingface compare --help; default: the files' own timing)")
    args = p.parse_args(argv)

    from talkingface.compare.report import write_all
    from talkingface.compare.runner import ComparisonRunner, discover_inputs, parse_variant

    variants = [parse_variant(v) for v in (args.variant or VARIANTS)]
    lines, ok = ["# Lip sync benchmark", "", f"Machine: {device_line()}"], True
    if not args.no_videos:
        inputs = discover_inputs(args.data, mode="videos", portrait=args.portrait,
                                 max_seconds=args.max_seconds)
        if args.asr_phones:
            inputs = with_asr_phones(inputs)
        comp = ComparisonRunner(variants, inputs, stream_latency=False,
                                align_real=args.align_real).run()
        write_all(comp, args.output / "videos")
        video_lines, ok = video_table(comp, args.output / "lipsync.csv")
        lines += video_lines
        if args.asr_phones:
            lines += closure_table(comp, "Real videos, phones found by PocketSphinx")
    if args.tts:
        comp = ComparisonRunner(variants, tts_inputs(args.portrait), stream_latency=False).run()
        write_all(comp, args.output / "tts")
        lines += closure_table(
            comp, f"Synthetic speech with known phones ({len(comp.inputs)} espeak-ng clips)")
    text = "\n".join(lines) + "\n"
    (args.output / "lipsync.md").write_text(text, encoding="utf-8")
    print(text)
    return 0 if ok else 1


def video_table(comp, csv_path: Path) -> tuple[list[str], bool]:
    """Markdown lines of the real-video table (also written to ``csv_path``), and whether
    every broken variant ranks clearly below the reference."""
    from talkingface.compare.runner import REAL

    metrics = ("mouth_corr", "mouth_lag", "av_offset_ms", "av_corr")
    table: dict[tuple[str, str], dict[str, float]] = {}
    for r in comp.rows:
        if r.metric in metrics:
            table.setdefault((r.variant, r.input), {})[r.metric] = r.value
    names = [v.name for v in comp.variants] + [REAL]
    rows = []
    for name in names:
        for item in comp.inputs:
            rec = comp.status_of(name, item)
            if rec is None:
                continue
            vals = table.get((name, item), {})
            rows.append([name, item, *(vals.get(m, math.nan) for m in metrics),
                         rec.status if rec.status == "ok" else rec.error])
    with open(csv_path, "w", newline="", encoding="utf-8") as f:
        w = csv.writer(f)
        w.writerow(["variant", "input", *metrics, "status"])
        w.writerows(rows)

    def mean(name: str, metric: str) -> float:
        vals = [table.get((name, i), {}).get(metric, math.nan) for i in comp.inputs]
        vals = [v for v in vals if math.isfinite(v)]
        return float(np.mean(vals)) if vals else math.nan

    def fmt(v: float) -> str:
        return "-" if not math.isfinite(v) else f"{v:.3f}" if abs(v) < 10 else f"{v:.0f}"

    lines = ["", f"## Real videos ({len(comp.inputs)}): generated vs real mouth opening", "",
             "| variant | input | mouth r (±3 fr) | lag (fr) | AV offset (ms) | AV r | status |",
             "|---|---|---|---|---|---|---|"]
    lines += [f"| {r[0]} | {r[1]} | " + " | ".join(fmt(v) for v in r[2:6]) + f" | {r[6]} |"
              for r in rows]
    lines += ["", "| variant | mean mouth r | mean AV offset (ms) |", "|---|---|---|"]
    lines += [f"| {n} | {fmt(mean(n, 'mouth_corr'))} | {fmt(mean(n, 'av_offset_ms'))} |"
              for n in names]
    def corr(name: str, item: str) -> float:
        # no correlation at all (NaN) is the worst possible score
        r = table.get((name, item), {}).get("mouth_corr", math.nan)
        return r if math.isfinite(r) else -math.inf

    ref = mean(REFERENCE, "mouth_corr") if REFERENCE in names else math.nan
    ok = True
    for name in names:
        if not name.startswith("broken"):
            continue
        r = mean(name, "mouth_corr")
        every = all(corr(name, i) < corr(REFERENCE, i) for i in comp.inputs)
        ranked_below = every and (not math.isfinite(r) or r <= ref - MARGIN)
        ok &= ranked_below
        lines.append(f"- {name}: mean r {fmt(r)} vs {REFERENCE} {fmt(ref)} -> "
                     f"{'ranked clearly below' if ranked_below else 'NOT ranked below'}")
    return lines, ok


if __name__ == "__main__":
    sys.exit(main())
