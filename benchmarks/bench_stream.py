"""Streaming memory and speed over long streams: does peak memory stay flat in stream length?

Streams the default pipeline (demo portrait; the demo speech clip repeated to N minutes, in a
temporary WAV decoded as it streams) into a fragmented MP4, exactly as ``talkingface stream``
does (``Pipeline.stream(..., output=...)``: the file decoded chunk by chunk, frames and sound
written to a fragmented MP4 as they come). Each duration runs in a fresh
subprocess; per duration it reports the child's peak RSS (``ru_maxrss``), the real-time factor,
the start latency, and the peak-RSS ratio of the longest stream to the shortest (target: within
10%, i.e. memory does not grow with stream length).

    python benchmarks/bench_stream.py                      # 1 and 10 minutes
    python benchmarks/bench_stream.py --minutes 1 10 --threads 1 --csv stream.csv
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import platform
import subprocess
import sys
import tempfile
from pathlib import Path

FIELDS = ("minutes", "peak_rss_mb", "real_time_factor", "start_latency_ms", "frames", "wall_s")


def write_long_wav(path: Path, minutes: float) -> None:
    """The demo speech clip repeated to ``minutes`` as 16-bit WAV, written piece by piece."""
    import soundfile as sf

    from talkingface.assets import demo_audio_path
    from talkingface.io import load_audio

    clip = load_audio(demo_audio_path()).samples.numpy()
    total = round(minutes * 60 * 16000)
    with sf.SoundFile(path, "w", samplerate=16000, channels=1, subtype="PCM_16") as out:
        written = 0
        while written < total:
            piece = clip[: total - written]
            out.write(piece)
            written += piece.size


def child(wav: str, output: str, threads: int | None) -> None:
    """One stream, as ``talkingface stream`` runs it; prints its figures as JSON."""
    from talkingface.api import Pipeline
    from talkingface.assets import demo_portrait_path

    pipe = Pipeline.from_config("default", [f"threads={threads or 0}"])
    for _ in pipe.stream(demo_portrait_path(), wav, output=Path(output)):
        pass
    prof = pipe.last_profile
    print(json.dumps({"real_time_factor": prof.real_time_factor,
                      "start_latency_ms": prof.start_latency_ms,
                      "frames": prof.frames, "wall_s": prof.wall_s}))


def measure(minutes: float, threads: int | None) -> dict:
    """Run one stream of ``minutes`` in a fresh subprocess; its figures plus its peak RSS."""
    with tempfile.TemporaryDirectory() as tmp:
        wav, mp4 = Path(tmp) / "speech.wav", Path(tmp) / "out.mp4"
        write_long_wav(wav, minutes)
        cmd = [sys.executable, __file__, "--child", str(wav), str(mp4)]
        if threads:
            cmd += ["--threads", str(threads)]
        proc = subprocess.Popen(cmd, stdout=subprocess.PIPE)
        out = proc.stdout.read()
        _, status, usage = os.wait4(proc.pid, 0)
        proc.returncode = os.waitstatus_to_exitcode(status)
        if proc.returncode:
            raise SystemExit(f"the {minutes}-minute stream failed (exit {proc.returncode})")
    row = {"minutes": minutes, "peak_rss_mb": round(usage.ru_maxrss / 1024, 1)}  # KiB on Linux
    row.update(json.loads(out.decode().strip().splitlines()[-1]))
    return row


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--minutes", type=float, nargs="+", default=[1, 10])
    parser.add_argument("--threads", type=int, default=None,
                        help="torch CPU threads (default: torch's own choice)")
    parser.add_argument("--csv", type=Path, help="also write the rows to this CSV file")
    parser.add_argument("--child", nargs=2, metavar=("WAV", "MP4"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(*args.child, args.threads)
        return
    import torch

    print(f"{platform.processor() or platform.machine()}, {os.cpu_count()} CPUs, "
          f"torch {torch.__version__}, threads {args.threads or torch.get_num_threads()}, "
          f"cuda {torch.cuda.is_available()}")
    rows = []
    for minutes in args.minutes:
        row = measure(minutes, args.threads)
        rows.append(row)
        print(f"{minutes:g} min: peak RSS {row['peak_rss_mb']:.0f} MB, real-time factor "
              f"{row['real_time_factor']:.3f}, start latency {row['start_latency_ms']:.0f} ms, "
              f"{row['frames']} frames in {row['wall_s']:.0f} s", flush=True)
    if len(rows) > 1:
        ratio = rows[-1]["peak_rss_mb"] / rows[0]["peak_rss_mb"]
        print(f"peak RSS {rows[-1]['minutes']:g} min / {rows[0]['minutes']:g} min: {ratio:.3f}")
    if args.csv:
        with args.csv.open("w", newline="") as f:
            out = csv.DictWriter(f, FIELDS)
            out.writeheader()
            out.writerows({k: r[k] for k in FIELDS} for r in rows)


if __name__ == "__main__":
    main()
