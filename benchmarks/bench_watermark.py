"""The provenance watermark, measured: detection rate after each attack, false positives on
unmarked video (which set the threshold), invisibility (PSNR/SSIM of the face region), and
cost (embedding ms/frame, verification speed against real time).

Positives: 5-second outputs of the default pipeline, several portraits x clips, each attacked
by: H.264 at CRF 23 and 35, scaling to 256 px and back, cropping 10 % from each border (kept
small, and resized back), brightness and contrast +-15 %, 25 -> 30 fps, and a screen-capture
chain (scale 1.25 + blur + noise + H.264 CRF 28). Negatives: the same outputs rendered with
the watermark off (under the same attacks), the real talking videos, static natural images
panned as clips, and noise clips.

    python benchmarks/bench_watermark.py --data ../shared/evaldata --csv watermark.csv
    python benchmarks/bench_watermark.py            # the demo portrait and clip only
"""

from __future__ import annotations

import argparse
import csv
import platform
import tempfile
import time
from pathlib import Path

import cv2
import numpy as np
import torch

SECONDS = 5.0
FPS = 25


def h264(frames: np.ndarray, crf: int, fps: float = FPS) -> np.ndarray:
    from talkingface.io import h264_round_trip

    return h264_round_trip(frames, crf, fps)


def resized(frames: np.ndarray, w: int, h: int) -> np.ndarray:
    return np.stack([cv2.resize(f, (w, h), interpolation=cv2.INTER_AREA) for f in frames])


def affine(frames: np.ndarray, gain: float, offset: float) -> np.ndarray:
    return np.clip(frames.astype(np.float32) * gain + offset, 0, 255).astype(np.uint8)


def contrast(frames: np.ndarray, gain: float) -> np.ndarray:
    mean = frames.mean()
    return np.clip((frames.astype(np.float32) - mean) * gain + mean, 0, 255).astype(np.uint8)


def to_30fps(frames: np.ndarray) -> np.ndarray:
    """25 -> 30 fps by blending the two nearest frames (as ffmpeg's framerate filter does),
    then H.264 CRF 23 at 30 fps."""
    times = np.arange(int(len(frames) * 30 / FPS)) * FPS / 30
    lo = np.floor(times).astype(int)
    hi = np.minimum(lo + 1, len(frames) - 1)
    t = (times - lo)[:, None, None, None]
    blended = frames[lo] * (1 - t) + frames[hi] * t
    return h264(np.rint(blended).astype(np.uint8), 23, 30)


def screen_capture(frames: np.ndarray) -> np.ndarray:
    h, w = frames.shape[1:3]
    big = resized(frames, round(w * 1.25), round(h * 1.25))
    blurred = np.stack([cv2.GaussianBlur(f, (0, 0), 0.8) for f in big]).astype(np.float32)
    noisy = blurred + np.random.default_rng(0).normal(0.0, 2.0, blurred.shape)
    return h264(np.clip(noisy, 0, 255).astype(np.uint8), 28)


def crop10(frames: np.ndarray) -> np.ndarray:
    h, w = frames.shape[1:3]
    return frames[:, h // 10 : h - h // 10, w // 10 : w - w // 10]


ATTACKS = {
    "none": lambda f: f,
    "h264_crf23": lambda f: h264(f, 23),
    "h264_crf35": lambda f: h264(f, 35),
    "scale_256_and_back": lambda f: resized(resized(f, 256, 256), f.shape[2], f.shape[1]),
    "crop_10pct": crop10,
    "crop_10pct_resized": lambda f: resized(crop10(f), f.shape[2], f.shape[1]),
    "brightness_+15pct": lambda f: affine(f, 1.15, 0),
    "brightness_-15pct": lambda f: affine(f, 0.85, 0),
    "contrast_+15pct": lambda f: contrast(f, 1.15),
    "contrast_-15pct": lambda f: contrast(f, 0.85),
    "fps_25_to_30": to_30fps,
    "screen_capture": screen_capture,
}


def render(pipe, portrait: str, clip: str):
    """The first 5 s of a run: uint8 ``[T, H, W, 3]`` and the face box (x0, y0, x1, y1)."""
    from talkingface.io import load_audio

    audio = load_audio(clip, target_rate=16000)
    audio = audio.slice(0, int(SECONDS * 16000))
    result = pipe.run(portrait, audio)
    box = result.prepared.crop.landmarks.box() if result.prepared.crop is not None else None
    return result.frames.data.numpy(), box


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, help="evaldata folder (images/, audio/, video/)")
    parser.add_argument("--portraits", type=int, default=4, help="portraits to use")
    parser.add_argument("--skip", nargs="*", default=["mona_lisa"],
                        help="portrait names containing these are not animated (the project "
                             "does not animate real public figures)")
    parser.add_argument("--clips", type=int, default=5, help="speech clips to use")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--strength", type=float, help="watermark.strength (default: config's)")
    parser.add_argument("--csv", type=Path, help="write the detection table here")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)

    from talkingface.api import Pipeline
    from talkingface.assets import demo_audio_path, demo_portrait_path
    from talkingface.compare.metrics import box_mask, psnr, ssim
    from talkingface.provenance import verify_file
    from talkingface.provenance.watermark import THRESHOLD, THRESHOLD_FEW, Watermarker, detect

    print(f"# {platform.machine()}, {torch.get_num_threads()} torch threads, "
          f"torch {torch.__version__}, threshold z >= {THRESHOLD} (stills: {THRESHOLD_FEW}), "
          f"strength "
          f"{args.strength or 'default'}")
    if args.data:
        portraits = [p for p in sorted((args.data / "images").glob("*.jpg"))
                     if not any(s in p.name for s in args.skip)][: args.portraits]
        clips = sorted((args.data / "audio").glob("*.wav"))[: args.clips]
        real = sorted((args.data / "video").glob("*.mp4"))
    else:
        portraits, clips, real = [], [], []
    # The built-in demo (a smooth synthetic face) always counts: it is the flattest input the
    # mark meets, and what a new user renders first.
    pairs = [(demo_portrait_path(), demo_audio_path())]
    pairs += [(portrait, clip) for portrait in portraits for clip in clips]
    strength = [] if args.strength is None else [f"watermark.strength={args.strength}"]
    marked_pipe = Pipeline.from_config("default", [f"threads={args.threads}", *strength])
    plain_pipe = Pipeline.from_config("default", [f"threads={args.threads}",
                                                  "watermark.enabled=false"])

    rows, negatives, quality, stills = [], [], [], []
    for portrait, clip in pairs:
        name = f"{Path(portrait).stem[:12]}+{Path(clip).stem[:12]}"
        marked, box = render(marked_pipe, str(portrait), str(clip))
        plain, _ = render(plain_pipe, str(portrait), str(clip))
        face = box_mask(marked.shape[1:3], box)
        quality.append((name, psnr(marked[0], plain[0], face), ssim(marked[0], plain[0], face)))
        for index in (0, len(marked) // 2):  # single frames, as PNG and as JPEG q85
            jpeg = cv2.imdecode(cv2.imencode(".jpg", marked[index],
                                             [cv2.IMWRITE_JPEG_QUALITY, 85])[1], 1)
            stills += [detect([marked[index]]).found, detect([jpeg]).found]
            negatives.append((f"unmarked still {name} #{index}", detect([plain[index]]).z,
                              THRESHOLD_FEW))
        for attack, fn in ATTACKS.items():
            report = detect(fn(marked))
            rows.append({"input": name, "attack": attack, "z": round(report.z, 2),
                         "found": report.found, "payload_ok": report.magic_ok})
            negatives.append((f"unmarked render {name} / {attack}", detect(fn(plain)).z,
                              THRESHOLD))
        print(f"{name}: face PSNR {quality[-1][1]:.1f} dB, SSIM {quality[-1][2]:.4f}; "
              f"min z over attacks {min(r['z'] for r in rows if r['input'] == name):.1f}")

    from talkingface.io import video_frames

    for video in real:
        frames = video_frames(video)
        next(frames)
        negatives.append((f"real video {video.name}", detect(frames).z, THRESHOLD))
    rng = np.random.default_rng(1)
    for image in (sorted((args.data / "images").glob("*.jpg")) if args.data else []):
        still = cv2.cvtColor(cv2.imread(str(image)), cv2.COLOR_BGR2RGB)
        still = cv2.resize(still, (512, 512), interpolation=cv2.INTER_AREA)
        pan = np.stack([np.roll(still, (i // 4, i // 3), axis=(0, 1)) for i in range(50)])
        negatives.append((f"still image clip {image.name}", detect(h264(pan, 23)).z, THRESHOLD))
        negatives.append((f"still image {image.name}", detect([still]).z, THRESHOLD_FEW))
    for i in range(20):
        noise = rng.normal(128, 30, (25, 256, 256, 3))
        if i % 2:
            noise = np.stack([cv2.GaussianBlur(f, (0, 0), 1 + i % 4) for f in noise])
        noise = np.clip(noise, 0, 255).astype(np.uint8)
        negatives.append((f"noise clip {i}", detect(noise).z, THRESHOLD))
    for i in range(300):  # single pink-noise images of three sizes
        side = (128, 256, 512)[i % 3]
        spectrum = np.fft.fft2(rng.standard_normal((side, side)))
        radius = np.hypot(*np.meshgrid(np.fft.fftfreq(side), np.fft.fftfreq(side)))
        pink = np.real(np.fft.ifft2(spectrum / np.maximum(radius, 1.0 / side)))
        gray = np.clip(128 + 40 * pink / pink.std(), 0, 255).astype(np.uint8)
        negatives.append((f"pink-noise image {i} ({side} px)",
                          detect([np.repeat(gray[..., None], 3, axis=2)]).z, THRESHOLD_FEW))

    print(f"\n{'attack':<22}{'detected':>10}{'min z':>8}{'payload ok':>12}")
    for attack in ATTACKS:
        sel = [r for r in rows if r["attack"] == attack]
        print(f"{attack:<22}{sum(r['found'] for r in sel):>5}/{len(sel):<4}"
              f"{min(r['z'] for r in sel):>8.1f}{sum(r['payload_ok'] for r in sel):>8}/{len(sel)}")
    total = sum(r["found"] for r in rows)
    from scipy.stats import beta

    # One-sided 95 % lower bound on the detection rate (Clopper-Pearson).
    lower = beta.ppf(0.05, total, len(rows) - total + 1) if total else 0.0
    print(f"{'all':<22}{total:>5}/{len(rows):<4} = {100 * total / len(rows):.1f} % "
          f"(95 % lower bound {100 * lower:.1f} %)")
    for r in rows:
        if not r["found"]:
            print(f"  missed: {r['input']} / {r['attack']} (z {r['z']})")
    print(f"single frames (PNG, JPEG q85): {sum(stills)}/{len(stills)} detected")
    for kind, threshold in (("videos", THRESHOLD), ("stills", THRESHOLD_FEW)):
        group = [(n, z) for n, z, t in negatives if t == threshold]
        false = [n for n, z in group if z >= threshold]
        worst = max(group, key=lambda nz: nz[1])
        # One-sided 95 % upper bound on the rate (Clopper-Pearson; 3/n when none is seen).
        bound = 3.0 / len(group) if not false else float("nan")
        print(f"negatives, {kind}: {len(group)}, false positives {len(false)} "
              f"({100 * len(false) / len(group):.2f} %; 95 % upper bound "
              f"{100 * bound:.1f} %), highest z {worst[1]:.2f} ({worst[0]})")
    print(f"face region: PSNR min {min(q[1] for q in quality):.1f} dB, "
          f"SSIM min {min(q[2] for q in quality):.4f}")

    frames = np.ascontiguousarray(marked[:50])
    marker = Watermarker(strength=marked_pipe.config.watermark.strength)
    marker.embed(frames[:2])
    times = []
    for _ in range(5):
        start = time.perf_counter()
        marker.embed(frames)
        times.append((time.perf_counter() - start) / len(frames) * 1000)
    print(f"embedding: {np.median(times):.2f} ms per {frames.shape[2]}x{frames.shape[1]} frame "
          f"(median of 5)")
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "marked.mp4"
        marked_pipe.run(str(portraits[0]), str(clips[0]), output=out)
        start = time.perf_counter()
        report = verify_file(out)
        took = time.perf_counter() - start
        from talkingface.io import probe_media

        duration = probe_media(out)["video"]["duration"]
        pooled = min(duration, report.watermark.frames / FPS)
        print(f"verify: {took:.2f} s for a {duration:.1f} s video, of which it reads the first "
              f"{pooled:.1f} s ({pooled / took:.1f}x real time over what it reads), watermark z "
              f"{report.watermark.z:.1f}")
    if args.csv:
        with args.csv.open("w", newline="") as f:
            writer = csv.DictWriter(f, fieldnames=list(rows[0]))
            writer.writeheader()
            writer.writerows(rows)


if __name__ == "__main__":
    main()
