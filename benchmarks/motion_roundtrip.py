"""Round trip of motion extraction: render the demo portrait with ``rules`` motion (from the
``visemes`` encoder on the demo speech) through ``meshwarp``, extract the motion back from the
rendered frames, and print the error per coefficient (MAE and correlation) against the motion
that drove the render, pooled over the emotions asked for.

    python benchmarks/motion_roundtrip.py --seconds 8 --size 256 --emotions neutral happy

Each clip starts with one frame of the portrait at rest (motion zero), which the extraction
takes as its rest face, so the extracted values are directly comparable with the driving ones.

With ``--data DIR`` the motion comes from real talking videos instead (``DIR/video/*.mp4``, or
``DIR/*.mp4``): each video's motion is extracted, renders its own first frame as the portrait,
and is extracted again from that render; the table compares the second extraction with the
first (real motion through meshwarp and back). It also prints, per video, how often a face was
found, the median confidence and the extraction time.

    python benchmarks/motion_roundtrip.py --data ../shared/evaldata
"""

from __future__ import annotations

import argparse
import math
import platform
import time
from pathlib import Path

import numpy as np
import torch

from talkingface.assets import demo_audio_path, demo_portrait
from talkingface.face.motion_track import extract_motion
from talkingface.io import load_audio, read_video
from talkingface.pipeline.contracts import POSE_NAMES, Controls, Frames, Motion, Portrait
from talkingface.plugins.audio.visemes import VisemeEncoder
from talkingface.plugins.motion.rules import RulesMotion
from talkingface.plugins.render.meshwarp import MeshWarpRenderer


def driving_motion(seconds: float, fps: float, seed: int, emotion: str) -> Motion:
    """``rules`` motion for the first ``seconds`` of the demo speech, after one rest frame."""
    encoder = VisemeEncoder()
    audio = load_audio(demo_audio_path(), target_rate=encoder.sample_rate)
    audio = audio.slice(0, int(seconds * audio.sample_rate))
    features = encoder.encode(audio, fps)
    motion = RulesMotion().generate(
        features, Controls(seed=seed, emotion=emotion, emotion_strength=0.6)
    )
    rest_pose = torch.tensor([[0, 0, 0, 0, 0, 1.0]])
    return Motion(
        torch.cat([rest_pose, motion.pose]),
        torch.cat([torch.zeros(1, len(motion.names)), motion.expression]),
        motion.names,
        fps,
    )


def round_trip(
    seconds: float, fps: float, size: int, seed: int, emotion: str, smoothing: str
) -> tuple[Motion, object, float, float]:
    motion = driving_motion(seconds, fps, seed, emotion)
    renderer = MeshWarpRenderer({"size": size, "flow_grid": max(32, size // 4)})
    prepared = renderer.prepare(demo_portrait())
    start = time.perf_counter()
    frames = renderer.render(prepared, motion)
    render_s = time.perf_counter() - start
    start = time.perf_counter()
    track = extract_motion(frames, smoothing=smoothing)
    extract_s = time.perf_counter() - start
    return motion, track, render_s, extract_s


def real_round_trip(path: Path, fps: float, size: int, smoothing: str) -> tuple[Motion, object]:
    """A real video's motion (relative to its first face frame), and the motion extracted from
    meshwarp's render of it on the video's own first face frame."""
    clip = read_video(path)
    start = time.perf_counter()
    track = extract_motion(Frames(clip.frames, clip.fps), fps=fps, smoothing=smoothing)
    seconds = time.perf_counter() - start
    first = int(np.argmax(track.has_face))
    print(
        f"# {path.name}: {clip.frames.shape[0]} frames {clip.frames.shape[2]}x"
        f"{clip.frames.shape[1]} at {clip.fps:.2f} fps; a face on "
        f"{100 * track.has_face.mean():.0f} % of the frames, median confidence "
        f"{float(np.median(track.confidence[track.has_face])):.2f}; "
        f"{1000 * seconds / clip.frames.shape[0]:.1f} ms/frame"
    )
    source = round(track.rest.frame)
    motion = track.relative_to_first().slice(first, track.num_frames)
    renderer = MeshWarpRenderer({"size": size, "flow_grid": max(32, size // 4)})
    prepared = renderer.prepare(Portrait(clip.frames[source], str(path)))
    frames = renderer.render(prepared, Motion(motion.pose, motion.expression, motion.names, fps))
    return motion, extract_motion(frames, smoothing=smoothing)


def errors(pairs: list[tuple[Motion, object]]) -> list[tuple[str, float, float, float]]:
    """``(name, MAE, correlation, driven range)`` per pose column and shared coefficient, over
    the frames of every ``(driving motion, extracted track)`` pair."""

    def columns(motion: Motion) -> dict[str, torch.Tensor]:
        return {
            **{n: motion.pose[:, i] for i, n in enumerate(POSE_NAMES)},
            **{n: motion.get(n) for n in motion.names},
        }

    truth = [columns(m) for m, _ in pairs]
    got = [columns(t.motion) for _, t in pairs]
    rows = []
    for name in (*POSE_NAMES, *pairs[0][1].names):
        if name not in truth[0]:
            continue
        a = torch.cat([c[name] for c in truth]).double().numpy()
        b = torch.cat([c[name] for c in got]).double().numpy()
        mae = float(np.abs(a - b).mean())
        corr = float(np.corrcoef(a, b)[0, 1]) if a.std() > 1e-6 and b.std() > 1e-6 else math.nan
        rows.append((name, mae, corr, float(a.max() - a.min())))
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=8.0)
    parser.add_argument("--fps", type=float, default=25.0)
    parser.add_argument("--size", type=int, default=256)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--emotions", nargs="+", default=["neutral", "happy", "surprised"])
    parser.add_argument("--smoothing", default="default")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--data", type=Path, help="a folder of real talking videos instead")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    if args.data is not None:
        videos = sorted((args.data / "video").glob("*.mp4")) or sorted(args.data.glob("*.mp4"))
        print(
            f"# {platform.machine()} torch {torch.__version__}, {args.threads} thread(s); "
            f"{len(videos)} real videos, rendered at {args.size} px, {args.fps:g} fps"
        )
        pairs = [real_round_trip(v, args.fps, args.size, args.smoothing) for v in videos]
        print_table(errors(pairs))
        return
    pairs, render_s, extract_s = [], 0.0, 0.0
    for emotion in args.emotions:
        motion, track, r_s, e_s = round_trip(
            args.seconds, args.fps, args.size, args.seed, emotion, args.smoothing
        )
        pairs.append((motion, track))
        render_s, extract_s = render_s + r_s, extract_s + e_s
    frames = sum(m.num_frames for m, _ in pairs)
    faces = sum(int(t.has_face.sum()) for _, t in pairs)
    confidence = np.concatenate([t.confidence for _, t in pairs])
    print(
        f"# {platform.machine()} {platform.processor() or ''} torch {torch.__version__}, "
        f"{args.threads} thread(s); {len(pairs)} clips ({', '.join(args.emotions)}), "
        f"{frames} frames at {args.size} px, smoothing {args.smoothing}"
    )
    print(
        f"# render {render_s:.2f} s, extract {extract_s:.2f} s "
        f"({1000 * extract_s / frames:.1f} ms/frame); faces on {faces}/{frames} frames, "
        f"median confidence {float(np.median(confidence)):.2f}"
    )
    print_table(errors(pairs))


def print_table(rows: list[tuple[str, float, float, float]]) -> None:
    print("| coefficient | MAE | correlation | driven range |")
    print("| --- | ---: | ---: | ---: |")
    for name, mae, corr, span in rows:
        unit = " deg" if name in ("yaw", "pitch", "roll") else ""
        scale = 180 / math.pi if unit else 1.0
        print(f"| {name} | {mae * scale:.3f}{unit} | {corr:.3f} | {span * scale:.3f}{unit} |")


if __name__ == "__main__":
    main()
