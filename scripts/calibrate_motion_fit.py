"""Print ``talkingface.face.motion_fit.MEASURE_BASES``: how each landmark measure changes per
unit of each expression coefficient on faces ``meshwarp`` renders, as the face landmarker reads
them back. Renders the demo portrait with one coefficient at a time (at two strengths, at two
sizes), finds the landmarks in every frame, and fits the slope of each measure.

    python scripts/calibrate_motion_fit.py
"""

from __future__ import annotations

import numpy as np
import torch

from talkingface.assets import demo_portrait
from talkingface.face import FaceAnalyzer
from talkingface.face.motion_fit import FIT_NAMES, MEASURES, MotionFitter, RestFace
from talkingface.pipeline.contracts import Motion
from talkingface.plugins.render.meshwarp import MeshWarpRenderer

STRENGTHS = (0.5, 1.0)


def measure_bases(sizes: tuple[int, ...] = (256, 512)) -> dict[str, np.ndarray]:
    """``{coefficient: [M]}`` for every name in FIT_NAMES, averaged over ``sizes``."""
    rows = [np.zeros(len(FIT_NAMES))]
    for index in range(len(FIT_NAMES)):
        for strength in STRENGTHS:
            row = np.zeros(len(FIT_NAMES))
            row[index] = strength
            rows.append(row)
    coeffs = np.array(rows)
    pose = torch.zeros(len(rows), 6)
    pose[:, 5] = 1.0
    motion = Motion(pose, torch.from_numpy(coeffs).float(), FIT_NAMES, 25.0)
    slopes = np.zeros((len(sizes), len(FIT_NAMES), len(MEASURES)))
    with FaceAnalyzer(max_faces=1, static=True) as analyzer:
        for s, size in enumerate(sizes):
            renderer = MeshWarpRenderer({"size": size})
            frames = renderer.render(renderer.prepare(demo_portrait()), motion).data
            points = [analyzer.detect(f)[0].points.double().numpy() for f in frames]
            fitter = MotionFitter(RestFace.from_points(points[0]))
            change = np.array([fitter.measure(p)[1] for p in points])
            for k in range(len(FIT_NAMES)):
                c = coeffs[1:, k]
                slopes[s, k] = c @ change[1:] / (c @ c)
    return {name: slopes[:, k].mean(0) for k, name in enumerate(FIT_NAMES)}


def main() -> None:
    print("MEASURE_BASES = {")
    for name, row in measure_bases().items():
        values = ", ".join(f"{v:.4f}" if abs(v) >= 5e-5 else "0" for v in row)
        print(f'    "{name}": ({values}),')
    print("}")


if __name__ == "__main__":
    main()
