"""Parity of our LivePortrait networks with upstream's, output by output, on the same weights.

Runs every method of our model API (`talkingface.plugins.render.liveportrait.load_models`) and
the method of the same name of upstream's own `LivePortraitWrapper` on the same inputs, in fp32
(half precision off upstream), and prints the max absolute difference per output. Each method
gets identical inputs on both sides (upstream's feature volume and keypoints feed both
`warp_decode` calls), so an error is not compounded from an earlier stage. Exits 1 if any
difference exceeds --atol (1e-4).

    python benchmarks/liveportrait_parity.py --upstream PATH/TO/LivePortrait [--weights DIR]

--upstream: a checkout of https://github.com/KwaiVGI/LivePortrait with its requirements
installed (its `src/` is imported: torch, numpy, opencv-python, pyyaml, rich, scipy).
--weights: a weights directory in the published layout. Without it, random weights
(`LivePortraitModels.from_config(FULL_CONFIG, seed)`, with non-trivial batch-norm statistics and
spectral-norm vectors) are written in that layout to a temporary directory and both sides
load them.

With the real weights (after `huggingface-cli download KwaiVGI/LivePortrait --local-dir
pretrained_weights` in the upstream checkout), a user checks parity with:

    python benchmarks/liveportrait_parity.py --upstream ~/LivePortrait \\
        --weights ~/LivePortrait/pretrained_weights/liveportrait --image face_crop_256.png

Inputs are seeded random images unless --image gives a source crop (resized to 256²); the
driving keypoints are the driving image's plus seeded noise (0.05), so the warp is not the
identity. Nothing here runs in the tests or CI.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from talkingface.plugins.render.liveportrait import FULL_CONFIG, LivePortraitModels, load_models


def upstream_wrapper(upstream: Path, weights: Path, device: str):
    """Upstream's LivePortraitWrapper on `weights`, fp32, on `device`."""
    sys.path.insert(0, str(upstream))
    from src.config.inference_config import InferenceConfig
    from src.live_portrait_wrapper import LivePortraitWrapper

    config = InferenceConfig(
        checkpoint_F=str(weights / "base_models/appearance_feature_extractor.pth"),
        checkpoint_M=str(weights / "base_models/motion_extractor.pth"),
        checkpoint_W=str(weights / "base_models/warping_module.pth"),
        checkpoint_G=str(weights / "base_models/spade_generator.pth"),
        checkpoint_S=str(weights / "retargeting_models/stitching_retargeting_module.pth"),
        flag_use_half_precision=False,
        flag_force_cpu=device == "cpu",
        flag_do_torch_compile=False,
    )
    return LivePortraitWrapper(inference_cfg=config)


def load_image(path: Path | None, gen: torch.Generator) -> torch.Tensor:
    """[1, 3, 256, 256] in 0..1: the image at `path` resized, or seeded noise."""
    if path is None:
        return torch.rand(1, 3, 256, 256, generator=gen)
    from PIL import Image

    image = Image.open(path).convert("RGB").resize((256, 256), Image.BICUBIC)
    return torch.from_numpy(np.asarray(image, dtype=np.float32) / 255).permute(2, 0, 1)[None]


def max_error(ours, theirs) -> float:
    return (ours.detach().float().cpu() - theirs.detach().float().cpu()).abs().max().item()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--upstream", type=Path, required=True, help="LivePortrait checkout")
    parser.add_argument("--weights", type=Path, help="weights directory (default: random)")
    parser.add_argument("--image", type=Path, help="source crop (default: seeded noise)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--device", default="cpu", help="cpu (default) or cuda")
    parser.add_argument("--atol", type=float, default=1e-4)
    args = parser.parse_args(argv)
    torch.set_grad_enabled(False)

    with tempfile.TemporaryDirectory() as scratch:
        weights = args.weights
        if weights is None:
            weights = LivePortraitModels.from_config(FULL_CONFIG, seed=args.seed).save(
                Path(scratch)
            )
            print(f"random weights (seed {args.seed}) written in the published layout")
        start = time.perf_counter()
        ours = load_models(weights, device=args.device, kernel_backend="torch")
        theirs = upstream_wrapper(args.upstream.resolve(), Path(weights), args.device)
        print(f"both loaded in {time.perf_counter() - start:.1f} s")

    gen = torch.Generator().manual_seed(args.seed + 1)
    source = load_image(args.image, gen).to(args.device)
    driving = torch.rand(1, 3, 256, 256, generator=gen).to(args.device)
    noise = (0.05 * torch.randn(1, 21, 3, generator=gen)).to(args.device)
    lip_ratio = torch.rand(1, 2, generator=gen).to(args.device)
    eye_ratio = torch.rand(1, 3, generator=gen).to(args.device)

    errors: dict[str, float] = {}
    spreads: dict[str, float] = {}  # upstream's mean |value| per output: the errors' scale
    timings: dict[str, tuple[float, float]] = {}

    def compare(name, ours_fn, theirs_fn):
        t0 = time.perf_counter()
        a = ours_fn()
        t1 = time.perf_counter()
        b = theirs_fn()
        timings[name] = (t1 - t0, time.perf_counter() - t1)
        if isinstance(b, dict):
            for key, value in b.items():
                if isinstance(value, torch.Tensor):
                    errors[f"{name}.{key}"] = max_error(a[key], value)
                    spreads[f"{name}.{key}"] = value.float().abs().mean().item()
        else:
            errors[name] = max_error(a, b)
            spreads[name] = b.float().abs().mean().item()
        return b

    feature = compare(
        "extract_feature_3d",
        lambda: ours.extract_feature_3d(source),
        lambda: theirs.extract_feature_3d(source),
    )
    info_s = compare(
        "get_kp_info", lambda: ours.get_kp_info(source), lambda: theirs.get_kp_info(source)
    )
    info_d = theirs.get_kp_info(driving)
    kp_source = compare(
        "transform_keypoint",
        lambda: ours.transform_keypoint(info_s),
        lambda: theirs.transform_keypoint(info_s),
    )
    kp_driving = theirs.transform_keypoint(info_d) + noise
    compare(
        "get_rotation_matrix",
        lambda: ours.get_rotation_matrix(info_s["pitch"], info_s["yaw"], info_s["roll"]),
        lambda: __import__("src.utils.camera", fromlist=["x"]).get_rotation_matrix(
            info_s["pitch"], info_s["yaw"], info_s["roll"]
        ),
    )
    compare(
        "stitch",
        lambda: ours.stitch(kp_source, kp_driving),
        lambda: theirs.stitch(kp_source, kp_driving),
    )
    compare(
        "stitching",
        lambda: ours.stitching(kp_source, kp_driving),
        lambda: theirs.stitching(kp_source, kp_driving),
    )
    compare(
        "retarget_lip",
        lambda: ours.retarget_lip(kp_source, lip_ratio),
        lambda: theirs.retarget_lip(kp_source, lip_ratio),
    )
    compare(
        "retarget_eye",
        lambda: ours.retarget_eye(kp_source, eye_ratio),
        lambda: theirs.retarget_eye(kp_source, eye_ratio),
    )
    decoded = compare(
        "warp_decode",
        lambda: ours.warp_decode(feature, kp_source, kp_driving),
        lambda: theirs.warp_decode(feature, kp_source, kp_driving),
    )

    # How much the motion moves the image: a warp that ignored keypoints would pass parity
    # trivially, so report the change from the identity motion too.
    still = theirs.warp_decode(feature, kp_source, kp_source)["out"]
    out = decoded["out"]
    print(f"\nmotion signal: max |out(kp_driving) - out(kp_source)| = {max_error(out, still):.3e}")
    print(
        f"device {args.device}, torch {torch.__version__}; decoded image mean {out.mean():.4f}, "
        f"std {out.std():.4f}; occlusion mean {decoded['occlusion_map'].mean():.4f}"
    )
    print(f"{'output':<32} {'max abs error':>14} {'upstream mean|x|':>17}")
    for name, error in errors.items():
        flag = "" if error <= args.atol else "  > atol"
        print(f"{name:<32} {error:>14.3e} {spreads[name]:>17.3e}{flag}")
    print(f"\n{'method':<22} {'ours s':>8} {'upstream s':>11}")
    for name, (ours_s, theirs_s) in timings.items():
        print(f"{name:<22} {ours_s:>8.3f} {theirs_s:>11.3f}")
    worst = max(errors.values())
    print(f"\nworst {worst:.3e} (atol {args.atol:g}): {'PASS' if worst <= args.atol else 'FAIL'}")
    return 0 if worst <= args.atol else 1


if __name__ == "__main__":
    sys.exit(main())
