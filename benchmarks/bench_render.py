"""Speed and fidelity of the ``meshwarp`` renderer on a folder of portraits.

Prints, per portrait: frames/s of ``render`` on a talking motion, the time per frame of each
part (forward displacement + flow inversion, mouth tile, ``warp2d``, closed-eye redraw, and
with ``--paste-back`` the composite into the portrait), the PSNR of a neutral frame against the
aligned crop (with ``--paste-back``: against the portrait), and the SSIM of the background
(pixels the head does not carry; with ``--paste-back`` also everything outside the crop) under
a head turn. With ``--png DIR`` it also writes one sheet per portrait: rest, jaw open, rounded
'o', bilabial closure, mid-blink, full blink, head turned.

    python benchmarks/bench_render.py --data ../shared/evaldata/images --png /tmp/meshwarp
    python benchmarks/bench_render.py --data portrait.jpg --paste-back --threads 1 --stat median
"""

from __future__ import annotations

import argparse
import math
import os
import platform
import statistics
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from talkingface.kernels.image_warp import warp2d
from talkingface.pipeline.contracts import Motion, Portrait
from talkingface.plugins.render.mesh import (
    backward_flow,
    displace_points,
    redraw_closing_eye_,
)
from talkingface.plugins.render.meshwarp import MeshWarpConfig, MeshWarpRenderer
from talkingface.plugins.render.mouth import mouth_tile
from talkingface.testing import neutral_motion, talking_motion

SHEET = (
    ("rest", {}),
    ("jaw_open 0.7", {"jaw_open": 0.7}),
    ("rounded o", {"jaw_open": 0.45, "mouth_round": 1.0}),
    ("bilabial", {"jaw_open": 0.3, "lip_press": 1.0}),
    ("mid-blink", {"blink_l": 0.5, "blink_r": 0.5}),
    ("blink", {"blink_l": 1.0, "blink_r": 1.0}),
    ("head turned", {"yaw": 0.25, "pitch": 0.1}),
)


def psnr(a: torch.Tensor, b: torch.Tensor) -> float:
    mse = ((a.float() - b.float()) ** 2).mean().item()
    return math.inf if mse == 0 else 10 * math.log10(255**2 / mse)


def ssim_map(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """SSIM of the luminance of two uint8 ``[H, W, 3]`` images, per pixel ``[H, W]`` (11x11
    Gaussian window, sigma 1.5, the usual constants)."""
    weights = torch.tensor([0.299, 0.587, 0.114])
    x = (a.float() @ weights)[None, None]
    y = (b.float() @ weights)[None, None]
    g = torch.exp(-((torch.arange(11) - 5.0) ** 2) / (2 * 1.5**2))
    g = g / g.sum()
    kernel = (g[:, None] * g[None, :])[None, None]

    def blur(v):
        return F.conv2d(F.pad(v, (5, 5, 5, 5), mode="replicate"), kernel)

    mx, my = blur(x), blur(y)
    vx, vy, cov = blur(x * x) - mx**2, blur(y * y) - my**2, blur(x * y) - mx * my
    c1, c2 = (0.01 * 255) ** 2, (0.03 * 255) ** 2
    ssim = ((2 * mx * my + c1) * (2 * cov + c2)) / ((mx**2 + my**2 + c1) * (vx + vy + c2))
    return ssim[0, 0]


def background_mask(rig, size: int) -> torch.Tensor:
    """bool ``[size, size]``: pixels the head does not move (head weight below 1%)."""
    weight = rig.grid_features[:, 3].view(1, 1, rig.grid, rig.grid)
    weight = F.interpolate(weight, size=(size, size), mode="bilinear", align_corners=True)
    return weight[0, 0].cpu() < 0.01


STAT = min  # how repeated timings are summarised (--stat)


def best_of(fn, repeats: int) -> float:
    """Seconds of one call of ``fn``: the best (or, with ``--stat median``, the median) of
    ``repeats`` timed calls after a warm-up call."""
    fn()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return STAT(times)


def paste_background_mask(prepared, size: int) -> torch.Tensor:
    """bool ``[H, W]`` of a pasted-back frame: pixels outside the crop's share, or inside the
    crop where the head does not move them."""
    import cv2

    paste = prepared.state["paste"].paste
    still = background_mask(prepared.state["rig"], size).numpy().astype(np.uint8)
    y0, y1, x0, x1 = paste.box
    height, width = paste.size
    mask = torch.ones(paste.size, dtype=torch.bool)
    inside = cv2.warpAffine(
        still, paste.to_crop, (x1 - x0, y1 - y0),
        flags=cv2.INTER_NEAREST | cv2.WARP_INVERSE_MAP, borderValue=1,
    )  # fmt: skip
    mask[y0:y1, x0:x1] = torch.from_numpy((inside > 0) | (paste.weight == 0))
    return mask


def parts(stage: MeshWarpRenderer, prepared, motion: Motion, repeats: int) -> dict[str, float]:
    """Seconds per frame of each part of the render, on one chunk."""
    cfg, rig, style = stage.config, prepared.state["rig"], prepared.state["mouth"]
    image = prepared.state["image"]
    coeffs, pose, tongue = stage.coefficients(motion)
    gain = cfg.head_rotation_gain
    flow = backward_flow(rig, coeffs, pose, gain, cfg.inverse_iterations)
    lips = torch.cat([rig.upper_lip, rig.lower_lip])
    n = len(rig.upper_lip)

    def tile():
        moved = displace_points(rig, coeffs, pose, gain, lips)
        return mouth_tile(style, moved[:, :n], moved[:, n:], pose[:, 5], tongue, rig.mouth_width)

    overlay, origin = tile()
    frames = warp2d(image, flow, overlay, origin)

    def eyes():
        for eye in range(len(rig.lids)):
            redraw_closing_eye_(frames.clone(), image, rig, eye, coeffs, pose, gain)

    count = motion.num_frames
    return {
        "flow": best_of(
            lambda: backward_flow(rig, coeffs, pose, gain, cfg.inverse_iterations), repeats
        )
        / count,
        "mouth tile": best_of(tile, repeats) / count,
        "warp2d": best_of(lambda: warp2d(image, flow, overlay, origin), repeats) / count,
        "eyes": best_of(eyes, repeats) / count,
        "paste": (
            best_of(lambda: prepared.state["paste"].paste.composite(frames), repeats) / count
            if "paste" in prepared.state
            else 0.0
        ),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, required=True,
                        help="folder of portrait images, or one image")
    parser.add_argument("--frames", type=int, default=96, help="frames of talking motion")
    parser.add_argument("--size", type=int, default=512)
    parser.add_argument("--flow-grid", type=int, default=128)
    parser.add_argument("--chunk", type=int, default=16, help="frames rendered together")
    parser.add_argument("--threads", type=int, default=0, help="torch threads (0: default)")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--png", type=Path, help="write a sheet of test frames per portrait")
    parser.add_argument("--paste-back", action="store_true",
                        help="render the whole portrait (render.params.paste_back=true)")
    parser.add_argument("--stat", choices=("best", "median"), default="best",
                        help="summary of the repeated timings (median on a busy machine)")
    args = parser.parse_args()
    from PIL import Image

    global STAT
    STAT = min if args.stat == "best" else statistics.median
    if args.threads:
        torch.set_num_threads(args.threads)
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    print(
        f"# {platform.processor() or platform.machine()}, {os.cpu_count()} cores, "
        f"torch {torch.__version__}, {torch.get_num_threads()} threads, load {load:.1f}"
    )
    config = MeshWarpConfig(size=args.size, flow_grid=args.flow_grid, chunk_frames=args.chunk,
                            paste_back=args.paste_back)
    stage = MeshWarpRenderer(config)
    stage.ensure_loaded()
    header = (
        f"{'portrait':34s} {'fps':>6s} {'flow':>6s} {'tile':>6s} {'warp':>6s} "
        f"{'eyes':>6s} {'paste':>6s} {'PSNR':>6s} {'bgSSIM':>7s} {'bgPSNR':>6s} {'prep s':>6s}"
    )
    print(header + f"   (parts in ms/frame, {args.stat} of {args.repeats})")
    if args.png:
        args.png.mkdir(parents=True, exist_ok=True)
    for path in sorted(args.data.iterdir()) if args.data.is_dir() else [args.data]:
        if path.suffix.lower() not in (".jpg", ".jpeg", ".png", ".webp"):
            continue
        pixels = torch.from_numpy(np.asarray(Image.open(path).convert("RGB")).copy())
        start = time.perf_counter()
        prepared = stage.prepare(Portrait(pixels, str(path)))
        prep_s = time.perf_counter() - start
        # What a still frame should reproduce: the aligned crop, or the portrait.
        paste = prepared.state["paste"].paste if "paste" in prepared.state else None
        crop = prepared.crop.image if paste is None else torch.from_numpy(paste.background)
        motion = talking_motion(args.frames)
        fps = args.frames / best_of(lambda m=motion, p=prepared: stage.render(p, m), args.repeats)
        split = parts(stage, prepared, motion.slice(0, args.chunk), args.repeats)
        rest = stage.render(prepared, neutral_motion(1)).data[0]
        turned = stage.render(prepared, neutral_motion(1, yaw=0.25, pitch=0.1)).data[0]
        background = (background_mask(prepared.state["rig"], args.size) if paste is None
                      else paste_background_mask(prepared, args.size))
        bg_ssim = ssim_map(turned, crop)[background].mean().item()
        bg_psnr = psnr(turned[background], crop[background])
        ms = {k: v * 1000 for k, v in split.items()}
        print(
            f"{path.name[:34]:34s} {fps:6.1f} {ms['flow']:6.2f} {ms['mouth tile']:6.2f} "
            f"{ms['warp2d']:6.2f} {ms['eyes']:6.2f} {ms['paste']:6.2f} {psnr(rest, crop):6.1f} "
            f"{bg_ssim:7.4f} {bg_psnr:6.1f} {prep_s:6.2f}"
        )
        if args.png:
            shots = [stage.render(prepared, neutral_motion(1, **values)).data[0]
                     for _, values in SHEET]
            for (name, _), shot in zip(SHEET, shots, strict=True):
                file = args.png / f"{path.stem}_{name.replace(' ', '_')}.png"
                Image.fromarray(shot.numpy()).save(file)
            Image.fromarray(torch.cat(shots, 1).numpy()).save(args.png / f"{path.stem}_sheet.png")


if __name__ == "__main__":
    main()
