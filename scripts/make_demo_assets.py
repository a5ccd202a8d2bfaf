"""Generate the built-in demo assets: a synthetic portrait and a short synthetic speech clip.

Dev-time only (the outputs are committed as package data; nothing is downloaded at run time):

    python scripts/make_demo_assets.py            # both assets into talkingface/assets/
    python scripts/make_demo_assets.py --check    # also re-run face analysis on the portrait

The portrait is MediaPipe's canonical face mesh (the mean face its landmarker is built around,
Apache-2.0, vertices below) rendered with soft shading and painted features, so it depicts no
real person and the landmarker finds it reliably. The speech is espeak-ng (``apt-get install
espeak-ng``), resampled to 16 kHz mono FLAC.
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFilter

ASSETS = Path(__file__).resolve().parents[1] / "talkingface" / "assets"

# MediaPipe's canonical_face_model.obj (mediapipe/modules/face_geometry/data), 468 vertices in
# centimetres, x to the subject's left (image right), y up, z towards the camera; 2 decimals.
_CANONICAL_VERTICES = """
    0.00 -3.41 5.98 0.00 -1.13 7.48 0.00 -2.09 6.06 -0.46 0.96 6.63 0.00 -0.46 7.59 0.00 0.37
    7.24 0.00 2.47 5.79 -4.25 2.58 3.28 0.00 4.02 5.28 0.00 4.89 5.39 0.00 8.26 4.48 0.00 -3.71
    5.86 0.00 -3.92 5.57 0.00 -3.99 5.22 0.00 -4.54 5.40 0.00 -4.75 5.53 0.00 -5.02 5.60 0.00
    -5.37 5.54 0.00 -6.15 5.07 0.00 -1.50 7.11 -0.42 -1.47 6.45 -7.09 5.43 0.10 -2.63 2.04 3.85
    -3.20 1.99 3.80 -3.78 2.04 3.65 -4.47 2.42 3.16 -2.16 2.19 3.85 -3.21 3.22 4.12 -2.67 3.21
    4.09 -3.75 3.17 3.97 -4.16 3.06 3.72 -5.06 1.93 2.78 -2.27 -7.43 4.39 -4.45 2.66 3.17 -7.21
    2.26 0.07 -5.80 2.35 2.20 -2.84 -0.72 4.43 -0.71 -3.33 5.88 -0.61 -3.92 5.44 -1.43 -3.50
    5.50 -1.91 -3.80 5.03 -1.13 -3.97 5.19 -1.56 -4.08 4.84 -2.65 -5.00 4.19 -0.43 -1.09 7.36
    -0.50 -0.48 7.44 -5.25 3.88 3.36 -1.72 0.97 4.56 -1.61 -0.94 5.81 -1.65 -0.61 5.58 -4.77
    -0.70 3.53 -0.48 0.30 7.10 -3.73 4.51 4.55 -4.59 4.30 4.05 -6.28 6.62 1.43 -1.22 4.14 5.11
    -2.19 3.10 4.00 -3.10 -4.35 4.10 -6.72 -4.79 -1.75 -1.19 -1.31 5.74 -0.73 -1.59 5.83 -2.46
    -4.34 4.28 -2.20 -4.30 4.16 -4.99 4.80 3.75 -1.59 -1.26 5.46 -2.64 4.52 4.92 -2.76 5.10
    5.02 -3.52 8.01 3.73 -5.60 5.72 2.72 -3.06 6.57 4.53 -5.72 4.25 2.83 -6.37 4.79 1.59 -0.67
    -3.69 5.74 -1.26 -3.79 5.42 -1.73 -3.95 5.00 -1.04 -1.46 5.66 -2.32 -4.33 4.26 -2.06 -4.48
    4.52 -2.15 -4.28 4.04 -0.95 -1.04 6.51 -1.47 -4.04 4.60 -1.02 -3.99 4.93 -0.53 -3.99 5.14
    -0.77 -6.10 4.99 -0.70 -5.29 5.45 -0.67 -4.95 5.51 -0.63 -4.70 5.45 -0.58 -4.52 5.34 -1.54
    -4.42 4.75 -1.62 -4.48 4.81 -1.73 -4.62 4.85 -1.84 -4.83 4.82 -2.37 -3.11 4.87 -7.54 -1.05
    -2.43 0.00 -1.72 6.60 -1.83 -4.40 4.40 -1.93 -4.41 4.50 -0.60 -2.01 5.87 -1.41 -1.71 5.24
    -0.66 -1.82 5.86 -2.34 0.57 4.29 -3.33 0.10 4.11 -1.73 -0.92 5.27 -5.13 7.49 2.66 -4.54
    6.32 3.68 -3.99 5.11 4.47 -2.17 -5.44 4.46 -1.40 5.01 5.32 -1.62 6.60 4.92 -1.89 8.24 4.27
    -4.20 2.24 3.38 -5.73 1.41 2.43 -1.86 2.36 3.84 -4.99 3.07 3.08 -1.30 1.42 4.83 -1.31 -0.67
    6.42 -6.47 0.94 1.69 -5.26 0.95 2.97 -4.43 0.72 3.52 -3.30 0.86 3.87 -2.43 1.13 4.04 -1.82
    1.47 4.22 -0.56 2.31 5.57 -6.34 -0.53 1.88 -5.59 3.21 2.69 -0.24 -1.46 7.07 -1.61 0.34 4.90
    -7.74 2.36 -2.01 -1.39 1.85 4.45 -1.79 -0.98 4.85 -4.67 2.66 3.08 -1.33 -0.28 6.10 -7.27
    -2.89 -2.25 -1.86 2.59 3.76 -0.92 0.07 6.67 -5.00 -6.14 1.89 -5.09 -7.18 0.71 -7.16 -0.81
    -0.07 -5.84 -5.25 0.92 -6.85 3.66 0.72 -2.41 -8.26 4.12 -0.18 -1.69 6.57 -2.10 -0.16 4.57
    -6.41 2.24 1.56 -3.67 2.36 3.64 -3.18 2.29 3.78 -2.20 -4.60 4.48 -6.23 -1.94 1.66 -1.29
    -9.30 4.09 -3.21 -8.53 2.80 -4.07 -7.99 1.93 0.00 6.55 5.03 0.00 -9.40 4.26 -2.72 2.32 3.78
    -2.29 2.40 3.70 -2.00 2.50 3.69 -6.13 3.40 2.04 -2.29 2.89 3.78 -2.72 2.96 3.87 -3.18 2.96
    3.88 -3.67 2.93 3.72 -4.02 2.86 3.48 -7.56 4.11 -0.99 -4.02 2.48 3.44 0.00 -2.52 5.93 -1.78
    -2.68 5.21 -1.22 -1.18 5.95 -0.73 -2.54 5.82 0.00 3.27 5.24 -4.14 -7.00 2.67 -3.31 -7.66
    3.38 -1.31 -8.64 4.70 -5.94 -6.22 -0.63 -2.00 2.74 3.74 -0.90 1.24 5.75 0.00 -8.77 4.89
    -2.31 -8.97 3.61 -6.95 -2.44 -0.13 -1.10 -4.46 5.12 -1.18 -4.58 5.19 -1.26 -4.79 5.24 -1.33
    -5.11 5.21 -1.55 -5.82 4.76 -1.95 -4.18 4.43 -2.12 -4.14 4.56 -2.29 -4.05 4.58 -2.85 -3.67
    4.48 -5.28 -2.24 2.86 -0.95 1.91 5.20 -1.31 3.10 4.23 -1.78 2.86 3.88 -1.85 -4.10 4.25
    -5.44 -4.03 2.11 -0.77 3.18 4.86 -1.94 -6.61 4.52 0.00 1.06 6.77 -0.52 1.58 6.15 0.00 1.73
    6.32 -1.25 0.23 5.68 0.00 -7.94 5.18 0.00 -6.99 5.15 -1.00 -6.93 4.98 -3.29 -5.38 3.80
    -2.31 -1.57 4.59 -2.68 -6.11 4.10 -3.83 -1.54 4.14 -2.96 -2.27 4.44 -4.39 -2.68 3.64 -1.22
    -7.83 4.97 -1.54 -0.14 5.20 -3.88 -6.04 3.31 -3.08 -6.81 3.81 -3.75 -4.50 3.73 -6.09 -3.21
    1.47 -4.59 -4.73 2.98 -6.58 -3.94 0.07 -3.49 -3.20 4.13 -1.26 0.80 5.31 -1.13 -0.93 6.54
    -1.44 -1.14 5.91 -0.92 -0.53 7.00 -1.76 3.53 4.33 -2.63 3.71 4.36 -3.39 3.72 4.31 -4.08
    3.68 4.08 -4.62 3.47 3.65 -5.17 2.54 2.67 -7.30 0.76 -0.05 -4.71 1.65 3.11 -4.07 1.48 3.48
    -3.27 1.47 3.73 -2.53 1.62 3.87 -1.97 1.86 3.96 -1.58 2.10 4.08 -7.66 0.67 -2.44 -1.40
    -1.34 5.63 -0.88 0.66 6.23 -0.77 -0.97 7.08 -0.46 -1.33 6.79 -0.75 -1.07 6.80 -1.24 -1.59
    5.48 -0.39 -1.41 6.96 -0.32 -1.61 6.51 -1.64 2.56 3.86 -1.26 2.47 4.20 -1.03 2.38 4.62
    -4.25 2.77 3.32 -4.53 2.91 3.34 0.46 0.96 6.63 4.25 2.58 3.28 0.42 -1.47 6.45 7.09 5.43
    0.10 2.63 2.04 3.85 3.20 1.99 3.80 3.78 2.04 3.65 4.47 2.42 3.16 2.16 2.19 3.85 3.21 3.22
    4.12 2.67 3.21 4.09 3.75 3.17 3.97 4.16 3.06 3.72 5.06 1.93 2.78 2.27 -7.43 4.39 4.45 2.66
    3.17 7.21 2.26 0.07 5.80 2.35 2.20 2.84 -0.72 4.43 0.71 -3.33 5.88 0.61 -3.92 5.44 1.43
    -3.50 5.50 1.91 -3.80 5.03 1.13 -3.97 5.19 1.56 -4.08 4.84 2.65 -5.00 4.19 0.43 -1.09 7.36
    0.50 -0.48 7.44 5.25 3.88 3.36 1.72 0.97 4.56 1.61 -0.94 5.81 1.65 -0.61 5.58 4.77 -0.70
    3.53 0.48 0.30 7.10 3.73 4.51 4.55 4.59 4.30 4.05 6.28 6.62 1.43 1.22 4.14 5.11 2.19 3.10
    4.00 3.10 -4.35 4.10 6.72 -4.79 -1.75 1.19 -1.31 5.74 0.73 -1.59 5.83 2.46 -4.34 4.28 2.20
    -4.30 4.16 4.99 4.80 3.75 1.59 -1.26 5.46 2.64 4.52 4.92 2.76 5.10 5.02 3.52 8.01 3.73 5.60
    5.72 2.72 3.06 6.57 4.53 5.72 4.25 2.83 6.37 4.79 1.59 0.67 -3.69 5.74 1.26 -3.79 5.42 1.73
    -3.95 5.00 1.04 -1.46 5.66 2.32 -4.33 4.26 2.06 -4.48 4.52 2.15 -4.28 4.04 0.95 -1.04 6.51
    1.47 -4.04 4.60 1.02 -3.99 4.93 0.53 -3.99 5.14 0.77 -6.10 4.99 0.70 -5.29 5.45 0.67 -4.95
    5.51 0.63 -4.70 5.45 0.58 -4.52 5.34 1.54 -4.42 4.75 1.62 -4.48 4.81 1.73 -4.62 4.85 1.84
    -4.83 4.82 2.37 -3.11 4.87 7.54 -1.05 -2.43 1.83 -4.40 4.40 1.93 -4.41 4.50 0.60 -2.01 5.87
    1.41 -1.71 5.24 0.66 -1.82 5.86 2.34 0.57 4.29 3.33 0.10 4.11 1.73 -0.92 5.27 5.13 7.49
    2.66 4.54 6.32 3.68 3.99 5.11 4.47 2.17 -5.44 4.46 1.40 5.01 5.32 1.62 6.60 4.92 1.89 8.24
    4.27 4.20 2.24 3.38 5.73 1.41 2.43 1.86 2.36 3.84 4.99 3.07 3.08 1.30 1.42 4.83 1.31 -0.67
    6.42 6.47 0.94 1.69 5.26 0.95 2.97 4.43 0.72 3.52 3.30 0.86 3.87 2.43 1.13 4.04 1.82 1.47
    4.22 0.56 2.31 5.57 6.34 -0.53 1.88 5.59 3.21 2.69 0.24 -1.46 7.07 1.61 0.34 4.90 7.74 2.36
    -2.01 1.39 1.85 4.45 1.79 -0.98 4.85 4.67 2.66 3.08 1.33 -0.28 6.10 7.27 -2.89 -2.25 1.86
    2.59 3.76 0.92 0.07 6.67 5.00 -6.14 1.89 5.09 -7.18 0.71 7.16 -0.81 -0.07 5.84 -5.25 0.92
    6.85 3.66 0.72 2.41 -8.26 4.12 0.18 -1.69 6.57 2.10 -0.16 4.57 6.41 2.24 1.56 3.67 2.36
    3.64 3.18 2.29 3.78 2.20 -4.60 4.48 6.23 -1.94 1.66 1.29 -9.30 4.09 3.21 -8.53 2.80 4.07
    -7.99 1.93 2.72 2.32 3.78 2.29 2.40 3.70 2.00 2.50 3.69 6.13 3.40 2.04 2.29 2.89 3.78 2.72
    2.96 3.87 3.18 2.96 3.88 3.67 2.93 3.72 4.02 2.86 3.48 7.56 4.11 -0.99 4.02 2.48 3.44 1.78
    -2.68 5.21 1.22 -1.18 5.95 0.73 -2.54 5.82 4.14 -7.00 2.67 3.31 -7.66 3.38 1.31 -8.64 4.70
    5.94 -6.22 -0.63 2.00 2.74 3.74 0.90 1.24 5.75 2.31 -8.97 3.61 6.95 -2.44 -0.13 1.10 -4.46
    5.12 1.18 -4.58 5.19 1.26 -4.79 5.24 1.33 -5.11 5.21 1.55 -5.82 4.76 1.95 -4.18 4.43 2.12
    -4.14 4.56 2.29 -4.05 4.58 2.85 -3.67 4.48 5.28 -2.24 2.86 0.95 1.91 5.20 1.31 3.10 4.23
    1.78 2.86 3.88 1.85 -4.10 4.25 5.44 -4.03 2.11 0.77 3.18 4.86 1.94 -6.61 4.52 0.52 1.58
    6.15 1.25 0.23 5.68 1.00 -6.93 4.98 3.29 -5.38 3.80 2.31 -1.57 4.59 2.68 -6.11 4.10 3.83
    -1.54 4.14 2.96 -2.27 4.44 4.39 -2.68 3.64 1.22 -7.83 4.97 1.54 -0.14 5.20 3.88 -6.04 3.31
    3.08 -6.81 3.81 3.75 -4.50 3.73 6.09 -3.21 1.47 4.59 -4.73 2.98 6.58 -3.94 0.07 3.49 -3.20
    4.13 1.26 0.80 5.31 1.13 -0.93 6.54 1.44 -1.14 5.91 0.92 -0.53 7.00 1.76 3.53 4.33 2.63
    3.71 4.36 3.39 3.72 4.31 4.08 3.68 4.08 4.62 3.47 3.65 5.17 2.54 2.67 7.30 0.76 -0.05 4.71
    1.65 3.11 4.07 1.48 3.48 3.27 1.47 3.73 2.53 1.62 3.87 1.97 1.86 3.96 1.58 2.10 4.08 7.66
    0.67 -2.44 1.40 -1.34 5.63 0.88 0.66 6.23 0.77 -0.97 7.08 0.46 -1.33 6.79 0.75 -1.07 6.80
    1.24 -1.59 5.48 0.39 -1.41 6.96 0.32 -1.61 6.51 1.64 2.56 3.86 1.26 2.47 4.20 1.03 2.38
    4.62 4.25 2.77 3.32 4.53 2.91 3.34
"""

SPEECH_TEXT = (
    "Hello, and welcome! This is a short demo of a talking face. "
    "The lips follow the words you hear."
)


def canonical_vertices() -> np.ndarray:
    """``[468, 3]`` float64 canonical face mesh vertices."""
    return np.array(_CANONICAL_VERTICES.split(), dtype=np.float64).reshape(468, 3)


def mesh_triangles() -> np.ndarray:
    """``[F, 3]`` triangles of the face mesh: the 3-cliques of MediaPipe's tesselation edges."""
    from mediapipe.python.solutions.face_mesh_connections import FACEMESH_TESSELATION

    edges = {tuple(sorted(e)) for e in FACEMESH_TESSELATION}
    neighbours: dict[int, set[int]] = {}
    for a, b in edges:
        neighbours.setdefault(a, set()).add(b)
        neighbours.setdefault(b, set()).add(a)
    tris = {tuple(sorted((a, b, c))) for a, b in edges for c in neighbours[a] & neighbours[b]}
    return np.array(sorted(tris), dtype=np.int64)


def rasterize(xy: np.ndarray, z: np.ndarray, tris: np.ndarray, h: int, w: int):
    """Z-buffered triangle ids and barycentric weights per pixel.

    Returns ``tri_id [h, w]`` (-1 where empty) and ``bary [h, w, 3]``.
    """
    depth = np.full((h, w), -np.inf)
    tri_id = np.full((h, w), -1, dtype=np.int64)
    bary = np.zeros((h, w, 3))
    for f, (a, b, c) in enumerate(tris):
        pa, pb, pc = xy[a], xy[b], xy[c]
        x0, y0 = np.floor(np.minimum(np.minimum(pa, pb), pc)).astype(int)
        x1, y1 = np.ceil(np.maximum(np.maximum(pa, pb), pc)).astype(int)
        x0, y0, x1, y1 = max(x0, 0), max(y0, 0), min(x1, w - 1), min(y1, h - 1)
        if x1 < x0 or y1 < y0:
            continue
        gx, gy = np.meshgrid(np.arange(x0, x1 + 1) + 0.5, np.arange(y0, y1 + 1) + 0.5)
        det = (pb[1] - pc[1]) * (pa[0] - pc[0]) + (pc[0] - pb[0]) * (pa[1] - pc[1])
        if abs(det) < 1e-9:
            continue
        wa = ((pb[1] - pc[1]) * (gx - pc[0]) + (pc[0] - pb[0]) * (gy - pc[1])) / det
        wb = ((pc[1] - pa[1]) * (gx - pc[0]) + (pa[0] - pc[0]) * (gy - pc[1])) / det
        wc = 1 - wa - wb
        inside = (wa >= -1e-6) & (wb >= -1e-6) & (wc >= -1e-6)
        zz = wa * z[a] + wb * z[b] + wc * z[c]
        region = depth[y0 : y1 + 1, x0 : x1 + 1]
        closer = inside & (zz > region)
        region[closer] = zz[closer]
        tri_id[y0 : y1 + 1, x0 : x1 + 1][closer] = f
        bary[y0 : y1 + 1, x0 : x1 + 1][closer] = np.stack([wa, wb, wc], -1)[closer]
    return tri_id, bary


def vertex_normals(v: np.ndarray, tris: np.ndarray) -> np.ndarray:
    """Area-weighted vertex normals ``[468, 3]``, oriented towards the camera (+z)."""
    n = np.cross(v[tris[:, 1]] - v[tris[:, 0]], v[tris[:, 2]] - v[tris[:, 0]])
    n[n[:, 2] < 0] *= -1  # the clique triangles have no consistent winding
    normals = np.zeros_like(v)
    for k in range(3):
        np.add.at(normals, tris[:, k], n)
    return normals / np.linalg.norm(normals, axis=1, keepdims=True)


def _mask(size: tuple[int, int], draw_fn, blur: float = 0.0) -> np.ndarray:
    """``[h, w]`` float mask in 0..1 drawn by ``draw_fn(ImageDraw)``, optionally blurred."""
    img = Image.new("L", (size[1], size[0]), 0)
    draw_fn(ImageDraw.Draw(img))
    if blur > 0:
        img = img.filter(ImageFilter.GaussianBlur(blur))
    return np.asarray(img, dtype=np.float64) / 255.0


def _over(canvas: np.ndarray, color, alpha: np.ndarray) -> None:
    """Composite a flat colour (or ``[h, w, 3]`` image) onto ``canvas`` in place."""
    alpha = alpha[..., None]
    canvas[:] = canvas * (1 - alpha) + np.asarray(color, dtype=np.float64) * alpha


def render_portrait(size: int = 512, supersample: int = 2) -> np.ndarray:
    """The demo portrait as uint8 ``[size, size, 3]`` RGB.

    Drawn in layers, back to front: background, back hair, shoulders, neck, the shaded
    face mesh, painted lips/eyes/brows/nostrils, front hair. Sizes are in centimetres of the
    canonical face (forehead landmark 10 to chin 152 is 17.7 cm) and mapped to pixels.
    """
    from talkingface.face import landmarks as LM

    s = size * supersample
    # A slightly narrower face than the canonical mean reads as a friendlier oval.
    v = canonical_vertices() * np.array([0.93, 1.0, 1.0])
    tris = mesh_triangles()
    unit = 0.42 * s / (v[10, 1] - v[152, 1])  # pixels per cm: the face is 42% of the height
    cx, cy = 0.5 * s, 0.42 * s  # where the canonical origin (between the eyes) lands

    def px(x: float, y: float) -> tuple[float, float]:
        return cx + x * unit, cy - y * unit

    def box(x0: float, y0: float, x1: float, y1: float) -> list[float]:
        """A PIL box from two corners in cm (any order)."""
        (a, b), (c, d) = px(x0, y0), px(x1, y1)
        return [min(a, c), min(b, d), max(a, c), max(b, d)]

    xy = np.stack([cx + v[:, 0] * unit, cy - v[:, 1] * unit], -1)
    z = v[:, 2] * unit

    def pts(idx) -> list[tuple[float, float]]:
        return [tuple(xy[i]) for i in idx]

    yy, xx = np.mgrid[0:s, 0:s].astype(np.float64)
    x_cm, y_cm = (xx - cx) / unit, (cy - yy) / unit
    shape = (s, s)
    soft = 1.0 * supersample

    # Background: a soft vertical gradient with a light vignette.
    top, bottom = np.array([200, 212, 216]), np.array([146, 166, 176])
    canvas = top + (bottom - top) * (yy / s)[..., None]
    canvas *= (1 - 0.2 * (((xx / s) - 0.5) ** 2 + ((yy / s) - 0.42) ** 2))[..., None]

    skin = np.array([236, 190, 160])
    skin_shadow = np.array([172, 114, 92])
    hair = np.array([78, 52, 38])
    # Hair: darker underneath, glossy near the crown, with faint strands swept to one side.
    strands = 1 + 0.035 * np.sin(40 * np.arctan2(x_cm, y_cm + 2.0))
    crown = 1 + 0.22 * np.exp(-(((x_cm + 2.0) ** 2) / 12 + ((y_cm - 10.0) ** 2) / 3))
    hair_rgb = hair * (strands * crown * np.clip(0.75 + 0.03 * y_cm, 0.6, 1.05))[..., None]

    # Back hair: the skull, and hair falling behind the ears to the jaw.
    back = _mask(
        shape,
        lambda d: (
            d.ellipse(box(-8.9, 12.4, 8.9, -6.0), fill=255),
            d.rounded_rectangle(box(-9.3, 3.0, 9.3, -6.5), radius=int(3.0 * unit), fill=255),
        ),
        blur=soft,
    )
    _over(canvas, hair_rgb * 0.8, back)

    # Shoulders and a crew-neck top.
    shirt = np.array([70, 104, 134])
    # Shoulders: a gentle slope from the neck that falls away past the deltoids.
    ax = np.abs(x_cm)
    shoulder_top = -12.4 - 0.03 * ax**2 - 1.2 * np.clip(ax - 16.0, 0, None) ** 2
    shoulders = np.clip((shoulder_top - y_cm) * unit / soft, 0, 1)
    shirt_shade = (1.0 - 0.3 * np.clip(x_cm / 19.0, -1, 1) ** 2) * (
        1 - 0.12 * np.clip(-(y_cm + 14.0) / 6, 0, 1)
    )
    _over(canvas, shirt * shirt_shade[..., None], shoulders)
    # Neck: a skin column, shadowed under the jaw and at its sides; a crew-neck collar.
    neck = _mask(
        shape,
        lambda d: (
            d.rectangle(box(-3.6, -4.0, 3.6, -13.5), fill=255),
            d.ellipse(box(-4.4, -11.6, 4.4, -14.8), fill=255),
        ),
        blur=soft,
    )
    under_jaw = np.clip((-9.4 - y_cm) / 3.0, 0, 1)
    neck_shade = np.clip(0.55 + 0.3 * under_jaw - 0.25 * (x_cm / 3.6) ** 2, 0, 1)
    _over(canvas, skin_shadow + (skin - skin_shadow) * neck_shade[..., None] * 0.92, neck)
    collar = _mask(
        shape,
        lambda d: d.arc(box(-4.6, -11.0, 4.6, -15.3), 0, 180, fill=255, width=int(0.7 * unit)),
        blur=soft,
    )
    _over(canvas, shirt * 0.8, collar)

    # The face: the canonical mesh, smooth-shaded (key light upper left, soft fill, specular).
    tri_id, bary = rasterize(xy, z, tris, s, s)
    covered = tri_id >= 0
    normals = vertex_normals(v, tris)
    n = np.einsum("hwk,hwkc->hwc", bary, normals[tris[np.maximum(tri_id, 0)]])
    n /= np.linalg.norm(n, axis=-1, keepdims=True) + 1e-9
    light = np.array([-0.35, 0.45, 0.82])
    light /= np.linalg.norm(light)
    lambert = np.clip(n @ light, 0, 1)
    fill = np.clip(n[..., 2], 0, 1)
    shade = 0.3 + 0.5 * lambert + 0.25 * fill
    half = light + np.array([0.0, 0.0, 1.0])
    half /= np.linalg.norm(half)
    specular = 0.08 * np.clip(n @ half, 0, 1) ** 30
    face_rgb = skin_shadow + (skin - skin_shadow) * np.clip(shade, 0, 1.15)[..., None]
    face_rgb += 255 * specular[..., None]
    for side in (-1, 1):  # warm cheeks
        d2 = ((x_cm - side * 4.3) ** 2 + (y_cm + 1.6) ** 2) / 1.8**2
        face_rgb += np.array([12, -5, -3]) * np.exp(-d2)[..., None]
    face_alpha = covered.astype(np.float64)  # supersampling anti-aliases the edge
    _over(canvas, face_rgb, face_alpha)

    # Lips: a rose tint over the shading; closed, with the parting midway between the inner
    # contours (the canonical mouth is slightly open).
    lips = _mask(shape, lambda d: d.polygon(pts(LM.LIPS_OUTER), fill=255), blur=1.2 * soft)
    lip_color = np.array([192, 102, 100]) * np.clip(shade, 0.55, 1.1)[..., None]
    _over(canvas, lip_color, 0.8 * lips)
    upper_inner = (78, 191, 80, 81, 82, 13, 312, 311, 310, 415, 308)
    lower_inner = (78, 95, 88, 178, 87, 14, 317, 402, 318, 324, 308)
    parting = [tuple(p) for p in (xy[list(upper_inner)] + xy[list(lower_inner)]) / 2]
    parting_mask = _mask(
        shape,
        lambda d: d.line(parting, fill=255, width=max(2, int(0.16 * unit)), joint="curve"),
        blur=0.8 * soft,
    )
    _over(canvas, np.array([104, 44, 46]), 0.85 * parting_mask)

    # Eyes (painted a little taller than the canonical contour): white, iris, pupil,
    # catchlight, lid shadow, lash line and crease.
    for contour, crease in (
        (LM.LEFT_EYE, (226, 247, 30, 29, 27, 28, 56, 190)),
        (LM.RIGHT_EYE, (446, 467, 260, 259, 257, 258, 286, 414)),
    ):
        centre = xy[list(contour)].mean(0)
        outline = (xy[list(contour)] - centre) * np.array([1.08, 1.3]) + centre
        eye = _mask(shape, lambda d, o=outline: d.polygon([tuple(p) for p in o], fill=255), 0.5)
        eye_w = np.ptp(outline[:, 0])
        _over(canvas, np.array([240, 236, 230]), eye)
        r = 0.4 * eye_w
        ix, iy = centre[0], centre[1] + 0.03 * eye_w
        dist = np.sqrt((xx - ix) ** 2 + (yy - iy) ** 2)
        iris_rgb = np.array([110, 78, 50]) * (0.7 + 0.4 * (dist / r))[..., None]
        _over(canvas, iris_rgb, eye * np.clip(r - dist + 0.5, 0, 1))
        ring = np.clip(1 - np.abs(dist - r) / (0.08 * r), 0, 1)
        _over(canvas, np.array([60, 42, 30]), 0.6 * eye * ring)
        _over(canvas, np.array([24, 18, 16]), eye * np.clip(0.4 * r - dist + 0.5, 0, 1))
        glint_d = np.sqrt((xx - ix + 0.3 * r) ** 2 + (yy - iy + 0.32 * r) ** 2)
        glint = np.clip(0.15 * r - glint_d + 0.5, 0, 1)
        _over(canvas, np.array([252, 252, 252]), 0.9 * eye * glint)
        lid_shadow = np.clip(1 - (yy - (centre[1] - 0.35 * r)) / (0.6 * r), 0, 1) * eye
        _over(canvas, np.array([70, 46, 40]), 0.3 * lid_shadow)
        upper = [tuple(p) for p in outline[8:].tolist() + outline[:1].tolist()]
        lash = _mask(
            shape,
            lambda d, u=upper: d.line(u, fill=255, width=max(2, int(0.2 * unit)), joint="curve"),
            blur=0.6 * soft,
        )
        _over(canvas, np.array([42, 30, 28]), 0.9 * lash)
        crease_line = _mask(
            shape,
            lambda d, c=crease: d.line(pts(c), fill=255, width=max(1, int(0.1 * unit))),
            blur=1.5 * soft,
        )
        _over(canvas, skin_shadow * 0.85, 0.3 * crease_line)

    # Brows: the mesh's brow outline, softened.
    for brow in (LM.LEFT_BROW, LM.RIGHT_BROW):
        mask = _mask(shape, lambda d, b=brow: d.polygon(pts(b), fill=255), blur=1.2 * soft)
        _over(canvas, hair_rgb * 0.95, 0.8 * mask)

    # Nostrils: soft dark spots beside the nose base.
    for side in (-1, 1):
        nostril = _mask(
            shape, lambda d, k=side: d.ellipse(box(k * 0.55, -1.45, k * 1.25, -1.8), fill=255),
            blur=soft,
        )  # fmt: skip
        _over(canvas, np.array([120, 66, 58]), 0.6 * nostril)

    # Front hair: the skull above a hairline that covers the mesh's top edge, comes down over
    # the temples and ears, and is swept a little to one side.
    front = _mask(shape, lambda d: d.ellipse(box(-8.9, 12.4, 8.9, -6.0), fill=255), blur=soft)
    t = np.clip((np.abs(x_cm) - 5.8) / 1.8, 0, 1)
    hairline = 7.9 - 0.06 * x_cm**2 - 8.0 * t * t * (3 - 2 * t) + 0.5 * np.tanh(x_cm / 2.5)
    front *= np.clip((y_cm - hairline) * unit / (1.5 * supersample), 0, 1)
    # The hair's soft shadow on the forehead, then the hair.
    shadow = np.clip(1 - (hairline - y_cm) / 0.9, 0, 1) * (y_cm < hairline) * face_alpha
    _over(canvas, skin_shadow * 0.9, 0.35 * shadow)
    _over(canvas, hair_rgb, front)

    image = Image.fromarray(np.clip(canvas + 0.5, 0, 255).astype(np.uint8))
    return np.asarray(image.resize((size, size), Image.LANCZOS))


def make_speech(out: Path, text: str = SPEECH_TEXT) -> None:
    """Speak ``text`` with espeak-ng and save it as 16 kHz mono FLAC at ``out``."""
    import soundfile as sf
    from scipy.signal import resample_poly

    if shutil.which("espeak-ng") is None:
        sys.exit("espeak-ng not found: apt-get install espeak-ng (dev-time only)")
    with tempfile.TemporaryDirectory() as tmp:
        wav = Path(tmp) / "speech.wav"
        # -s words per minute, -g extra gap between words (10 ms units) for clear pauses.
        subprocess.run(
            ["espeak-ng", "-v", "en-us", "-s", "150", "-g", "2", "-w", str(wav), text], check=True
        )
        audio, rate = sf.read(wav, dtype="float32")
    if audio.ndim > 1:
        audio = audio.mean(axis=1)
    if rate != 16000:
        audio = resample_poly(audio, 16000, rate).astype(np.float32)
    audio = audio / max(1e-6, float(np.abs(audio).max())) * 0.8
    sf.write(out, audio, 16000, format="FLAC", subtype="PCM_16")


def check_portrait(path: Path) -> None:
    """Run face analysis on the saved portrait and print what it found."""
    import torch

    from talkingface import face as F

    pixels = torch.from_numpy(np.asarray(Image.open(path).convert("RGB")).copy())
    with F.FaceAnalyzer() as analyzer:
        lm = analyzer.analyze(pixels, source=str(path))
    print(
        f"{path.name}: {lm.points.shape[0]} landmarks, box {[round(c) for c in lm.box()]}, "
        f"mouth {F.mouth_opening(lm.points):.3f}, eyes {F.eye_openness(lm.points).tolist()}, "
        f"pose (deg) {[round(float(a), 1) for a in F.head_pose(lm.points) * 57.2958]}"
    )


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=ASSETS, help="output folder")
    parser.add_argument("--skip-speech", action="store_true", help="only make the portrait")
    parser.add_argument("--skip-portrait", action="store_true", help="only make the speech")
    parser.add_argument("--check", action="store_true", help="run face analysis on the portrait")
    args = parser.parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    portrait = args.out / "demo_portrait.png"
    if not args.skip_portrait:
        Image.fromarray(render_portrait()).save(portrait, optimize=True)
        print(f"wrote {portrait} ({portrait.stat().st_size // 1024} KB)")
    if not args.skip_speech:
        speech = args.out / "demo_speech.flac"
        make_speech(speech)
        print(f"wrote {speech} ({speech.stat().st_size // 1024} KB)")
    if args.check:
        check_portrait(portrait)


if __name__ == "__main__":
    main()
