"""End-to-end speed and memory of a pipeline: real-time factor, per-stage ms/frame, streaming
start latency, and peak memory as the audio grows.

Each measurement runs in a fresh subprocess so peak RSS is per run. Audio longer than the given
clip is the clip repeated (speech all the way through), written to a temporary WAV that the
pipeline reads like a user's file.

    python benchmarks/bench_e2e.py --image ../shared/evaldata/images/p09_man_webcam_room_512.jpg \
        --audio ../shared/evaldata/audio/a03_en_hdtf_radio31_8s.wav --seconds 60 600
"""

from __future__ import annotations

import argparse
import json
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path


def _child(args) -> None:
    import torch

    from talkingface.api import Pipeline

    pipe = Pipeline.from_config(args.preset, args.overrides)
    audio = args.audio
    prepared = pipe.prepare(args.image)
    out = {}
    if args.mode == "batch":
        with tempfile.TemporaryDirectory() as tmp:
            t0 = time.perf_counter()
            result = pipe.run(prepared, audio, output=Path(tmp) / "out.mp4")
            out["wall_s"] = time.perf_counter() - t0
        prof = result.profile
    else:
        t0 = time.perf_counter()
        for _ in pipe.stream(prepared, audio):
            pass
        out["wall_s"] = time.perf_counter() - t0
        prof = pipe.last_profile
    out.update(prof.summary())
    out["stages"] = [{k: r[k] for k in ("kind", "stage", "method", "ms_per_frame", "fps")}
                     for r in prof.rows()]
    out["threads"] = pipe.config.threads or torch.get_num_threads()  # runs restore the count
    print(json.dumps(out))


def long_wav(source: str, seconds: float, path: Path) -> None:
    """``source`` repeated to ``seconds``, as 16-bit 16 kHz mono WAV."""
    import wave

    import numpy as np

    from talkingface.io import load_audio

    clip = load_audio(source, target_rate=16000).samples.numpy()
    reps = int(np.ceil(seconds * 16000 / clip.shape[0]))
    pcm = (np.tile(clip, reps)[: int(seconds * 16000)] * 32767).astype("<i2")
    with wave.open(str(path), "wb") as f:
        f.setnchannels(1)
        f.setsampwidth(2)
        f.setframerate(16000)
        f.writeframes(pcm.tobytes())


def run_child(args, seconds: float, mode: str) -> dict:
    with tempfile.TemporaryDirectory() as tmp:
        wav = Path(tmp) / "long.wav"
        long_wav(args.audio, seconds, wav)
        cmd = [sys.executable, __file__, "--child-seconds", str(seconds), "--mode", mode,
               "--image", args.image, "--audio", str(wav), "--preset", args.preset,
               *args.overrides]
        proc = subprocess.run(cmd, capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        raise SystemExit(f"benchmark run failed:\n{proc.stderr[-3000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--image", required=True)
    parser.add_argument("--audio", required=True)
    parser.add_argument("--seconds", type=float, nargs="+", default=[60.0])
    parser.add_argument("--preset", default="default")
    parser.add_argument("--stream", action="store_true", help="also measure streaming")
    parser.add_argument("--mode", default="batch", help=argparse.SUPPRESS)
    parser.add_argument("--child-seconds", type=float, help=argparse.SUPPRESS)
    parser.add_argument("overrides", nargs="*")
    args = parser.parse_args()
    if args.child_seconds is not None:
        _child(args)
        return
    print(f"machine: {platform.machine()} {platform.processor()}, python "
          f"{platform.python_version()}, {time.strftime('%Y-%m-%d %H:%M')}")
    modes = ["batch", "stream"] if args.stream else ["batch"]
    for seconds in args.seconds:
        for mode in modes:
            r = run_child(args, seconds, mode)
            lat = (f", start latency {r['start_latency_ms']:.0f} ms"
                   if r.get("start_latency_ms") else "")
            print(f"{mode:>6} {seconds:>6.0f} s audio: RTF {r['real_time_factor']:.3f}, "
                  f"{r['frames'] / r['wall_s']:.1f} frames/s end to end, peak RSS "
                  f"{r['peak_rss_mb']:.0f} MB{lat}")
            for s in r["stages"]:
                if s["ms_per_frame"] is not None and s["method"] != "ensure_loaded":
                    print(f"         {s['kind']:<7}{s['stage']:<12}{s['method']:<13}"
                          f"{s['ms_per_frame']:8.2f} ms/frame")


if __name__ == "__main__":
    main()
