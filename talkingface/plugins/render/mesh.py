"""Face rig of the ``meshwarp`` renderer: control points, expression bases, head pose, and the
per-frame backward flow that warps the portrait.

Built once per portrait (:func:`build_rig`) from the MediaPipe landmarks of the aligned crop:
the landmarks (with the inner lips and eyelids densified), rings around the face that carry
hair and neck along with the head, and still anchors on the frame border. A Delaunay
triangulation of these points interpolates their displacement to the coarse flow grid, so each
expression coefficient becomes a fixed displacement field and a frame's forward displacement
is one small matmul (pose included). The backward flow that ``warp2d`` takes inverts it (see
:func:`backward_flow`); a nearly closed eye, thinner than a grid cell, is redrawn per pixel
(:func:`redraw_closing_eye_`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from talkingface.face.landmarks import (
    BROWS,
    CHIN,
    EYE_LIDS,
    FACE_OVAL,
    FOREHEAD,
    GONIONS,
    IRISES,
    LEFT_CHEEK,
    LOWER_INNER_LIP,
    LOWER_OUTER_LIP,
    NOSE_BRIDGE,
    RIGHT_CHEEK,
    UPPER_INNER_LIP,
    UPPER_OUTER_LIP,
)
from talkingface.face.measures import head_pivot
from talkingface.pipeline.contracts import EXPRESSION_NAMES

DERIVED_BASES: tuple[str, ...] = ("lip_close", "lip_seal")
"""Bases driven by ``lip_press`` (see below), not by a Motion column of their own."""
BASIS_NAMES: tuple[str, ...] = (
    EXPRESSION_NAMES[0],  # jaw_open
    *DERIVED_BASES,
    *(name for name in EXPRESSION_NAMES[1:] if name != "tongue"),  # the tongue is drawn
)
"""Displacement fields of the rig. ``lip_close`` is driven by ``jaw_open * lip_press``: it lifts
the lower lip back onto the upper one, so a bilabial closes the lips whatever the jaw does;
``lip_seal`` is driven by ``lip_press``: it closes the gap the lips have in the portrait itself
(a portrait with parted lips still closes them on p/b/m)."""

# Rings around the face oval (scale about its centre) that carry hair and neck with the head.
_RING_SCALES = (1.12, 1.3, 1.55, 1.85, 2.2)
_RING_HEAD_WEIGHT = (1.0, 1.0, 0.75, 0.35, 0.0)
_RING_NECK_WEIGHT = (1.0, 0.8, 0.45, 0.15, 0.0)
_LASH_HEIGHT = 0.15  # lash line above the upper-lid landmarks, in lid gaps
_BLINK_UPPER, _BLINK_LOWER = 0.84, 0.19  # shares of the lid gap each lid travels; they overlap


@dataclass
class Region:
    """Triangles whose backward flow is solved exactly (mouth, eyes).

    Attributes:
        vertices: long ``[V]`` control-point indices the triangles use.
        triangles: long ``[F, 3]`` indices into ``vertices``.
        rest: float32 ``[V, 2]`` rest positions (crop pixels).
        rest_sign: float32 ``[F]`` orientation of each rest triangle (+1 / -1).
    """

    vertices: torch.Tensor
    triangles: torch.Tensor
    rest: torch.Tensor
    rest_sign: torch.Tensor


@dataclass
class FaceRig:
    """Everything ``meshwarp`` precomputes for one portrait (tensors on the render device).

    Attributes:
        size: side of the crop (pixels).
        grid: coarse flow nodes per side.
        points: float32 ``[N, 3]`` control points (x, y, z in crop pixels).
        point_mask: float32 ``[N]`` how much each point follows the head (0 = background).
        point_bases: float32 ``[K, N, 2]`` displacement of each point per unit coefficient.
        grid_features: float32 ``[h*w, 4 + 2K]`` per grid node: the head-weighted offset from
            the pivot ``m * (X - pivot)`` (3), the head weight ``m`` (1), then the x and the
            y components of the K bases; a frame's displacement is a linear map of them.
        pivot: float32 ``[3]`` centre of head rotation.
        face_height: forehead-to-chin distance (pixels); translations are in its units.
        regions: the mouth and eye regions solved exactly.
        upper_lip: long ``[n]`` control points of the upper inner lip, left to right.
        lower_lip: long ``[n]`` control points of the lower inner lip, left to right.
        lids: per eye (image-left first), long ``[m]`` lash-line and ``[m]`` lower-lid control
            points from the outer corner to the inner one.
        jaw_drop: lower-lip travel at ``jaw_open = 1`` (pixels).
        mouth_width: outer mouth width at rest (pixels).
    """

    size: int
    grid: int
    points: torch.Tensor
    point_mask: torch.Tensor
    point_bases: torch.Tensor
    grid_features: torch.Tensor
    pivot: torch.Tensor
    face_height: float
    regions: list[Region]
    upper_lip: torch.Tensor
    lower_lip: torch.Tensor
    lids: list[tuple[torch.Tensor, torch.Tensor]]
    jaw_drop: float
    mouth_width: float

    @property
    def spacing(self) -> float:
        """Pixels between neighbouring grid nodes."""
        return (self.size - 1) / (self.grid - 1)


# --------------------------------------------------------------------------------------------
# Building the rig (once per portrait, numpy)


def smoothstep(t: np.ndarray) -> np.ndarray:
    t = np.clip(t, 0.0, 1.0)
    return t * t * (3.0 - 2.0 * t)


def _densify(points: np.ndarray, contour: tuple[int, ...]) -> tuple[list[int], np.ndarray]:
    """Midpoints between consecutive contour landmarks: returns the contour as a list where new
    points are numbered from ``len(points)`` on, and the new points ``[M, 3]``."""
    order, extra = [], []
    for a, b in zip(contour[:-1], contour[1:], strict=True):
        order.append(a)
        order.append(len(points) + len(extra))
        extra.append((points[a] + points[b]) / 2)
    order.append(contour[-1])
    return order, np.asarray(extra, dtype=np.float64).reshape(-1, 3)


def _curve(points: np.ndarray, contour: list[int], x: np.ndarray) -> np.ndarray:
    """y of the polyline through ``points[contour]`` at ``x`` (held flat beyond its ends)."""
    xs, ys = points[contour, 0], points[contour, 1]
    order = np.argsort(xs)
    return np.interp(x, xs[order], ys[order])


def _mouth_bases(p: np.ndarray, upper: list[int], lower: list[int], jaw_drop: float) -> dict:
    """Displacement ``[N, 2]`` of every point for the mouth coefficients."""
    x, y, z = p[:, 0], p[:, 1], p[:, 2]
    corner_l, corner_r = upper[0], upper[-1]
    xm = (x[corner_l] + x[corner_r]) / 2
    width = p[UPPER_OUTER_LIP[-1], 0] - p[UPPER_OUTER_LIP[0], 0]
    half = width / 2
    line = (_curve(p, upper, x) + _curve(p, lower, x)) / 2
    u = (x - xm) / half  # -1 .. 1 between the outer corners
    rel = y - line  # below the mouth line > 0

    # Which side of the mouth each point is on (0 = upper jaw, 1 = lower jaw): a sharp split
    # between the lips, widening towards and beyond the corners so the cheeks stretch smoothly.
    band = width * (0.06 + 0.45 * np.maximum(np.abs(u) - 0.7, 0.0))
    side = smoothstep(0.5 + 0.5 * rel / band)
    # The inner lips split cleanly in the middle and taper into the corners, so the opening
    # is an almond, not a box.
    inner_u = np.abs(x - xm) / max((x[corner_r] - x[corner_l]) / 2, 1.0)
    taper = 0.5 * np.clip((inner_u - 0.35) / 0.65, 0.0, 1.0) ** 1.5
    side[upper] = taper[upper]
    side[lower] = 1.0 - taper[lower]
    # The mandible turns about the jaw joints: a point drops in proportion to how far in front
    # of them it is, so the chin drops a little less than the lower lip and the jaw angle barely.
    z_joint = (z[LEFT_CHEEK] + z[RIGHT_CHEEK]) / 2
    reach = np.clip((z_joint - z) / max(z_joint - z[14], 1e-3), 0.0, 1.1)
    jaw = np.zeros_like(p[:, :2])
    jaw[:, 1] = jaw_drop * side * reach

    # The lips: an ellipse around the mouth, 1 on the lips, fading out on the surrounding skin.
    lip_up = max(line[0] - y[0], 1.0)
    lip_down = max(y[17] - line[17], 1.0)
    vertical = np.where(rel < 0, rel / lip_up, rel / lip_down)
    radius = np.sqrt(u**2 + vertical**2)
    on_lips = smoothstep((1.6 - radius) / 0.6)
    around = smoothstep((2.4 - radius) / 1.4)

    # Bilabial: the lower lip rides back up to the upper one (weighted with jaw_open).
    below_lip = np.clip((y - _curve(p, list(LOWER_OUTER_LIP), x)) / (0.6 * lip_down + 1e-3), 0, 1)
    close = np.zeros_like(jaw)
    close[:, 1] = -jaw[:, 1] * np.where(rel > 0, 1.0 - below_lip, 1.0) * (radius < 2.4)

    # Sealing the portrait's own parted lips, together with ``lip_press`` (which rolls each
    # inner lip 0.35 x its distance from the mouth line towards it, closing 35 % of the gap):
    # the remaining 65 % of the rest gap between the inner lips at each x, the lower lip
    # rising more than the upper one drops (nothing moves where they already meet), fading
    # out over the skin around the mouth.
    rest_gap = np.maximum(_curve(p, lower, x) - _curve(p, upper, x), 0.0)
    lip_side = smoothstep(0.5 + 0.5 * rel / band)  # no corner taper: each lip meets the other
    lip_side[upper], lip_side[lower] = 0.0, 1.0
    seal = np.zeros_like(jaw)
    seal[:, 1] = 0.65 * rest_gap * (0.35 * (1.0 - lip_side) - 0.65 * lip_side) * around

    press = np.zeros_like(jaw)  # lips thin and roll in
    press[:, 1] = -0.35 * rel * on_lips
    press[:, 0] = -0.04 * (x - xm) * on_lips

    sat = np.clip(u, -1.0, 1.0)
    wide = np.zeros_like(jaw)  # corners pulled apart, lips thinner
    wide[:, 0] = 0.13 * width * sat * around
    wide[:, 1] = -0.1 * rel * on_lips
    rnd = np.zeros_like(jaw)  # corners pushed together, lips pouting
    rnd[:, 0] = -0.2 * width * sat * around
    rnd[:, 1] = 0.12 * rel * on_lips

    # Smile / frown: the corners move; a broader lift raises the cheeks.
    corners = p[[UPPER_OUTER_LIP[0], UPPER_OUTER_LIP[-1]], :2]
    d2 = ((p[:, None, :2] - corners[None]) ** 2).sum(-1)  # [N, 2]
    near = np.exp(-d2 / (2 * (0.28 * width) ** 2))
    cheek = np.exp(-d2 / (2 * (0.6 * width) ** 2))
    outward = np.stack([-near[:, 0] + near[:, 1], near.sum(1)], axis=1)
    smile = np.stack([0.09 * width * outward[:, 0], -0.13 * width * outward[:, 1]], axis=1)
    smile[:, 1] -= 0.05 * width * cheek.sum(1)
    frown = np.stack([-0.03 * width * outward[:, 0], 0.09 * width * outward[:, 1]], axis=1)

    return {
        "jaw_open": jaw,
        "lip_close": close,
        "lip_seal": seal,
        "lip_press": press,
        "mouth_wide": wide,
        "mouth_round": rnd,
        "smile": smile,
        "frown": frown,
    }


def _eye_bases(p: np.ndarray, lids: list[tuple[list[int], list[int]]], face_h: float) -> dict:
    """Blink, gaze and brow fields ``[N, 2]``."""
    x, y = p[:, 0], p[:, 1]
    out = {}
    gaze_x, gaze_y = np.zeros_like(p[:, :2]), np.zeros_like(p[:, :2])
    for eye, (upper, lower) in enumerate(lids):
        top, bottom = _curve(p, upper, x), _curve(p, lower, x)
        gap = np.maximum(bottom - top, 0.0)
        max_gap = max(float(gap.max()), 2.0)
        xs = p[upper, 0]
        inside_x = (x > xs.min()) & (x < xs.max())
        # Upper lid down, lower lid up, meeting a little below the middle; the skin above
        # and below follows over a couple of eye heights.
        t = np.clip((y - top) / np.maximum(gap, 1e-3), 0.0, 1.0)
        between = _BLINK_UPPER * gap * (1 - t) - _BLINK_LOWER * gap * t
        # The brows stay put, however big the eye.
        reach = min(2.2 * max_gap, 0.1 * face_h)
        above = _BLINK_UPPER * gap * np.clip(1 - (top - y) / reach, 0, 1) ** 2
        below = -_BLINK_LOWER * gap * np.clip(1 - (y - bottom) / (1.2 * max_gap), 0, 1) ** 2
        dy = np.where(y <= top, above, np.where(y >= bottom, below, between))
        blink = np.zeros_like(p[:, :2])
        blink[:, 1] = np.where(inside_x, dy, 0.0)
        out[("blink_l", "blink_r")[eye]] = blink
        # Gaze moves the iris points that are visible between the lids.
        width = float(xs.max() - xs.min())
        for i in IRISES[eye]:
            if top[i] + 0.5 < y[i] < bottom[i] - 0.5:
                gaze_x[i, 0] = 0.2 * width
                gaze_y[i, 1] = -0.1 * width
    out["gaze_x"], out["gaze_y"] = gaze_x, gaze_y

    # Brows: up or down with the forehead, fading towards the lids and the hairline.
    up, down = np.zeros_like(p[:, :2]), np.zeros_like(p[:, :2])
    mid_x = p[NOSE_BRIDGE, 0]
    for brow, (upper, _) in zip(BROWS, lids, strict=True):
        bx, by = p[list(brow), 0], p[list(brow), 1].mean()
        lid = p[upper, 1].min()
        margin = 0.12 * face_h
        across = smoothstep(1 - np.maximum(np.maximum(bx.min() - x, x - bx.max()), 0) / margin)
        to_lid = np.clip((lid - y) / max(lid - by, 1.0), 0, 1)
        to_top = np.clip(1 - (by - y) / max(0.9 * (by - p[FOREHEAD, 1]), 1.0), 0, 1)
        weight = across * np.where(y > by, to_lid, to_top)
        up[:, 1] -= 0.05 * face_h * weight
        down[:, 1] += 0.03 * face_h * weight
        down[:, 0] -= 0.015 * face_h * np.sign(x - mid_x) * weight
    out["brow_up"], out["brow_down"] = up, down
    return out


def _cheek_basis(p: np.ndarray, face_h: float) -> np.ndarray:
    x, y = p[:, 0], p[:, 1]
    mid = p[NOSE_BRIDGE, 0]
    half = max((p[RIGHT_CHEEK, 0] - p[LEFT_CHEEK, 0]) / 2, 1.0)
    level = p[[UPPER_OUTER_LIP[0], UPPER_OUTER_LIP[-1]], 1].mean() - 0.05 * face_h
    lateral = np.clip(np.abs(x - mid) / half, 0, 1.2) ** 2
    weight = lateral * np.exp(-(((y - level) / (0.16 * face_h)) ** 2))
    out = np.zeros_like(p[:, :2])
    out[:, 0] = 0.035 * face_h * np.sign(x - mid) * weight
    return out


def _rings(p: np.ndarray, size: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Points around the face that follow the head partly, plus still anchors on the border.

    Returns positions ``[R, 3]``, head weights ``[R]``, the nearest oval landmark of each point
    ``[R]`` (-1 for points that do not move with expressions) and the expression share ``[R]``.
    """
    oval = p[list(FACE_OVAL)]
    centre = oval.mean(0)
    z_joint = (p[LEFT_CHEEK, 2] + p[RIGHT_CHEEK, 2]) / 2
    y_gonion, y_chin = p[list(GONIONS), 1].mean(), p[CHIN, 1]
    pos, weight, nearest, share = [], [], [], []
    for k, scale in enumerate(_RING_SCALES):
        ring = centre + scale * (oval - centre)
        # Hair is roughly at the depth of the head's silhouette.
        ring[:, 2] = oval[:, 2] + (z_joint - oval[:, 2]) * min(1.0, (scale - 1) / 0.3)
        neck = smoothstep((ring[:, 1] - y_gonion) / max(y_chin - y_gonion, 1.0))
        w = _RING_HEAD_WEIGHT[k] * (1 - neck) + _RING_NECK_WEIGHT[k] * neck
        keep = (ring[:, :2] > 10).all(1) & (ring[:, :2] < size - 11).all(1)
        pos.append(ring[keep])
        weight.append(w[keep])
        nearest.append(np.asarray(FACE_OVAL)[keep] if k == 0 else np.full(keep.sum(), -1))
        share.append(np.full(keep.sum(), 0.5 if k == 0 else 0.0))
    # Anchors just outside the frame, so every grid node lies inside the triangulation.
    edge = np.linspace(-6.0, size + 5.0, 13)
    lo, hi = np.full(13, -6.0), np.full(13, size + 5.0)
    border = np.concatenate(
        [
            np.stack([edge, lo], 1),
            np.stack([edge, hi], 1),
            np.stack([lo, edge], 1),
            np.stack([hi, edge], 1),
        ]
    )
    border = np.unique(border, axis=0)
    border = np.concatenate([border, np.full((len(border), 1), z_joint)], axis=1)
    pos.append(border)
    weight.append(np.zeros(len(border)))
    nearest.append(np.full(len(border), -1))
    share.append(np.zeros(len(border)))
    return (
        np.concatenate(pos),
        np.concatenate(weight),
        np.concatenate(nearest),
        np.concatenate(share),
    )


def build_rig(
    landmarks: torch.Tensor,
    size: int,
    grid: int,
    jaw_drop: float = 0.13,
    head_depth: float = 0.6,
    device: torch.device | str = "cpu",
) -> FaceRig:
    """Precompute the rig of one aligned face.

    Args:
        landmarks: float ``[478, 3]`` MediaPipe landmarks in crop pixels (z scaled like x, y).
        size: side of the crop.
        grid: coarse flow nodes per side (>= 2).
        jaw_drop: lower-lip travel at ``jaw_open = 1``, in face heights.
        head_depth: scale of the landmark depth used for head rotation (1 = as measured).
        device: where the per-frame tensors live.
    """
    from scipy.ndimage import gaussian_filter
    from scipy.spatial import Delaunay

    lm = landmarks.detach().double().cpu().numpy()
    face_h = float(np.linalg.norm(lm[FOREHEAD, :2] - lm[CHIN, :2]))
    # Densified inner lips and lids: the split between the lips and the lid lines must be
    # edges of the triangulation, so no triangle bridges them from farther away.
    pts = lm
    contours = {}
    for name, contour in (("upper", UPPER_INNER_LIP), ("lower", LOWER_INNER_LIP)):
        order, extra = _densify(pts, contour)
        pts = np.concatenate([pts, extra])
        contours[name] = order
    lids = []
    for upper, lower in EYE_LIDS:
        pair = []
        for contour in (upper, lower):
            order, extra = _densify(pts, contour)
            pts = np.concatenate([pts, extra])
            pair.append(order)
        # The lid closes at the lash line, a little above the landmarks, which often sit on
        # the white of the eye: what lies between folds away into the closed seam.
        upper_order, lower_order = pair
        inner = upper_order[1:-1]
        gap = np.maximum(_curve(pts, lower_order, pts[inner, 0]) - pts[inner, 1], 0.0)
        lashes = pts[inner].copy()
        lashes[:, 1] -= _LASH_HEIGHT * gap
        lash_order = [upper_order[0], *range(len(pts), len(pts) + len(inner)), upper_order[-1]]
        pts = np.concatenate([pts, lashes])
        lids.append((lash_order, lower_order))
    # A closed mouth has its inner lips a pixel apart: nudge them apart so the triangulation
    # keeps both and the split has some room.
    for name, sign in (("upper", -1.0), ("lower", 1.0)):
        inner = contours[name][1:-1]
        pts[inner, 1] += sign * 0.25

    n_face = len(pts)
    bases = {}
    bases.update(_mouth_bases(pts, contours["upper"], contours["lower"], jaw_drop * face_h))
    bases.update(_eye_bases(pts, lids, face_h))
    bases["cheek_puff"] = _cheek_basis(pts, face_h)
    face_bases = np.stack([bases[name] for name in BASIS_NAMES])  # [K, n_face, 2]

    ring_pos, ring_weight, nearest, share = _rings(lm, size)
    points = np.concatenate([pts, ring_pos])
    mask = np.concatenate([np.ones(n_face), ring_weight])
    ring_bases = np.zeros((len(BASIS_NAMES), len(ring_pos), 2))
    moving = nearest >= 0
    ring_bases[:, moving] = face_bases[:, nearest[moving]] * share[moving, None]
    point_bases = np.concatenate([face_bases, ring_bases], axis=1)

    # The head turns about the neck (head_pivot, shared with motion extraction). A flattened
    # depth keeps the parallax between nose and cheeks, but a warp cannot hide the far cheek
    # or reveal the near ear: full depth would only stretch more.
    pivot = head_pivot(lm)
    points[:, 2] = pivot[2] + (points[:, 2] - pivot[2]) * head_depth

    tri = Delaunay(points[:, :2])
    spacing = (size - 1) / (grid - 1)
    axis = np.arange(grid) * spacing
    nodes = np.stack(np.meshgrid(axis, axis, indexing="xy"), -1).reshape(-1, 2)
    simplex = tri.find_simplex(nodes)
    if (simplex < 0).any():
        raise RuntimeError("meshwarp: grid nodes outside the control-point triangulation")
    affine = tri.transform[simplex]
    bary2 = np.einsum("nij,nj->ni", affine[:, :2], nodes - affine[:, 2])
    bary = np.concatenate([bary2, 1 - bary2.sum(1, keepdims=True)], axis=1)  # [hw, 3]
    corners = tri.simplices[simplex]  # [hw, 3]

    def to_grid(values: np.ndarray) -> np.ndarray:  # [N, C] -> [hw, C]
        return (values[corners] * bary[..., None]).sum(1)

    # The head-motion field, piecewise linear over the triangles, kinks along their edges: an
    # outline crossing them (face against hair) turns wavy as the head turns. A slight blur
    # of the field removes the kinks.
    head = to_grid(np.concatenate([(points - pivot) * mask[:, None], mask[:, None]], 1))
    sigma = 0.025 * face_h / spacing
    head = gaussian_filter(head.reshape(grid, grid, 4), (sigma, sigma, 0), mode="nearest")
    head = head.reshape(-1, 4)
    # The blur's faint tails would nudge the background: below a weight of 0.005 it is still.
    head *= np.clip((head[:, 3:] - 0.005) / 0.03, 0.0, 1.0)
    grid_pos, grid_mask = head[:, :3], head[:, 3]
    grid_bases = np.stack([to_grid(b) for b in point_bases])  # [K, hw, 2]

    regions = _regions(points, tri.simplices, contours, lids)

    def t(a, dtype=torch.float32):
        return torch.as_tensor(np.ascontiguousarray(a), dtype=dtype, device=device)

    return FaceRig(
        size=size,
        grid=grid,
        points=t(points),
        point_mask=t(mask),
        point_bases=t(point_bases),
        grid_features=t(
            np.concatenate(
                [grid_pos, grid_mask[:, None], grid_bases[..., 0].T, grid_bases[..., 1].T], axis=1
            )
        ),
        pivot=t(pivot),
        face_height=face_h,
        regions=[
            Region(t(v, torch.long), t(f, torch.long), t(points[v, :2]), t(s))
            for v, f, s in regions
        ],
        upper_lip=t(contours["upper"], torch.long),
        lower_lip=t(contours["lower"], torch.long),
        lids=[(t(upper, torch.long), t(lower, torch.long)) for upper, lower in lids],
        jaw_drop=jaw_drop * face_h,
        mouth_width=float(lm[UPPER_OUTER_LIP[-1], 0] - lm[UPPER_OUTER_LIP[0], 0]),
    )


def _regions(points, simplices, contours, lids):
    """The mouth and eye triangles, as (vertices, local triangles, orientation) triples."""
    # Only the triangles touching the lip split and the lid lines: elsewhere the Newton
    # solution is already within a pixel, and each triangle costs time per node per frame.
    selectors = [np.isin(np.arange(len(points)), contours["upper"] + contours["lower"])]
    for (upper, lower), iris in zip(lids, IRISES, strict=True):
        selectors.append(np.isin(np.arange(len(points)), list(upper) + list(lower) + list(iris)))
    xy = points[:, :2]
    out = []
    for chosen in selectors:
        faces = simplices[chosen[simplices].any(1)]
        vertices, local = np.unique(faces, return_inverse=True)
        local = local.reshape(-1, 3)
        a, b, c = (xy[vertices][local[:, i]] for i in range(3))
        cross = (b - a)[:, 0] * (c - a)[:, 1] - (b - a)[:, 1] * (c - a)[:, 0]
        out.append((vertices, local, np.sign(cross)))
    return out


# --------------------------------------------------------------------------------------------
# Per frame (torch, batched over frames)


def pose_matrices(pose: torch.Tensor, gain: float = 1.0) -> torch.Tensor:
    """Scaled rotations ``s R [T, 3, 3]`` in image axes (x right, y down, z away from the
    camera) from ``pose [T, 6]`` (yaw, pitch, roll, tx, ty, scale); angles times ``gain``.

    ``R = F Ry(yaw) Rx(-pitch) Rz(roll) F`` with the camera-frame rotations of
    :func:`talkingface.face.head_pose` (``F`` flips y and z), so yaw > 0 turns
    the nose to the image right, pitch > 0 tilts it up and roll > 0 turns the head
    counterclockwise as seen: what the renderer draws is what ``head_pose`` measures.
    """
    yaw, pitch, roll = (pose[:, i] * gain for i in range(3))
    scale = pose[:, 5]
    cy, sy = torch.cos(yaw), torch.sin(yaw)
    cp, sp = torch.cos(-pitch), torch.sin(-pitch)
    cr, sr = torch.cos(roll), torch.sin(roll)
    one, zero = torch.ones_like(yaw), torch.zeros_like(yaw)
    ry = torch.stack([cy, zero, sy, zero, one, zero, -sy, zero, cy], -1).view(-1, 3, 3)
    rx = torch.stack([one, zero, zero, zero, cp, -sp, zero, sp, cp], -1).view(-1, 3, 3)
    rz = torch.stack([cr, -sr, zero, sr, cr, zero, zero, zero, one], -1).view(-1, 3, 3)
    flip = torch.tensor([1.0, -1.0, -1.0], device=pose.device)
    rot = flip[:, None] * (ry @ rx @ rz) * flip[None, :]
    return rot * scale[:, None, None]


def displace_points(
    rig: FaceRig, coeffs: torch.Tensor, pose: torch.Tensor, gain: float, index: torch.Tensor
) -> torch.Tensor:
    """Output positions ``[T, n, 2]`` of the control points ``index [n]``."""
    rest = rig.points[index]  # [n, 3]
    expr = torch.einsum("tk,knc->tnc", coeffs, rig.point_bases[:, index])
    rot = pose_matrices(pose, gain)
    posed = torch.einsum("tij,nj->tni", rot[:, :2], rest - rig.pivot) + rig.pivot[:2]
    shift = pose[:, None, 3:5] * rig.face_height
    mask = rig.point_mask[index][None, :, None]
    # The same map as forward_displacement: the head moves by its weight, expressions turn
    # with it.
    head = mask * (posed + shift - rest[:, :2])
    return rest[:, :2] + head + torch.einsum("tij,tnj->tni", rot[:, :2, :2], expr)


def forward_displacement(
    rig: FaceRig, coeffs: torch.Tensor, pose: torch.Tensor, gain: float
) -> torch.Tensor:
    """Forward displacement at the grid nodes, ``[T, 2, h, w]`` (rest node -> output)."""
    t, g = len(coeffs), rig.grid
    rot = pose_matrices(pose, gain)
    affine = rot[:, :2] - torch.eye(3, device=pose.device)[:2]  # [T, 2, 3]
    shift = pose[:, 3:5] * rig.face_height
    # Expressions turn with the head: d += R e, with e = sum_k c_k B_k.
    turn_x = coeffs[:, :, None] * rot[:, None, :2, 0]  # [T, K, 2]: weights of B_k,x
    turn_y = coeffs[:, :, None] * rot[:, None, :2, 1]
    weights = torch.cat([affine.transpose(1, 2), shift[:, None], turn_x, turn_y], 1)  # [T, C, 2]
    disp = rig.grid_features @ weights.permute(1, 0, 2).reshape(weights.shape[1], t * 2)
    return disp.view(g, g, t, 2).permute(2, 3, 0, 1)


def backward_flow(
    rig: FaceRig,
    coeffs: torch.Tensor,
    pose: torch.Tensor,
    gain: float = 1.0,
    iterations: int = 3,
) -> torch.Tensor:
    """Coarse backward flow ``[T, h, w, 2]`` for ``warp2d``: output pixel p samples p + flow(p).

    The forward map sends rest point q to q + d(q); the backward flow solves
    flow(p) = -d(p + flow(p)). The plain fixed point (or the one-step -d(p)) converges only
    where |grad d| < 1 and slowly near it, and a jaw drop compresses the chin and jaw line
    that much: it leaves pixels of error there. Newton steps on the grid's own field converge
    in a few iterations everywhere the map does not fold. Where it is discontinuous, at the
    lip split and the lid lines, no grid field inverts it; there the flow is the exact
    inverse of the deformed triangle mesh: each node finds the deformed triangle it lies in
    and takes the same barycentric point of the rest triangle.
    """
    disp = forward_displacement(rig, coeffs, pose, gain)
    t, g = len(coeffs), rig.grid
    span = 2.0 / (rig.size - 1)
    base = torch.linspace(-1.0, 1.0, g, device=disp.device)
    base = torch.stack(torch.meshgrid(base, base, indexing="xy"), -1)  # [h, w, 2] (x, y)
    # Newton steps on r(f) = f + d(p + f): each needs d and its Jacobian J at p + f, sampled
    # from the grid together; the step is f -= (I + J)^-1 r. Near kinks of the field a step
    # can overshoot: a step that does not shrink the residual becomes a fixed-point step.
    dy, dx = torch.gradient(disp, spacing=rig.spacing, dim=(2, 3))
    field = torch.cat([disp, dx, dy], 1)  # [T, 6, h, w]: dx, dy, ddx/dx, ddy/dx, ddx/dy, ddy/dy

    def sample(values: torch.Tensor, flow: torch.Tensor) -> torch.Tensor:
        return F.grid_sample(
            values, base + flow * span, mode="bilinear", padding_mode="border", align_corners=True
        )

    flow = -disp.permute(0, 2, 3, 1)
    for _ in range(iterations):
        d_x, d_y, xx, yx, xy, yy = sample(field, flow).unbind(1)  # [T, h, w] each
        residual = torch.stack([flow[..., 0] + d_x, flow[..., 1] + d_y], -1)
        a, b, c, e = 1 + xx, xy, yx, 1 + yy  # I + J = [[a, b], [c, e]]
        det = a * e - b * c
        ok = det > 0.05  # where the map folds or nearly does, Newton has no good step
        safe = torch.where(ok, det, torch.ones_like(det))
        rx, ry = residual.unbind(-1)
        newton = torch.stack([(e * rx - b * ry) / safe, (a * ry - c * rx) / safe], -1)
        candidate = flow - newton
        after = candidate + sample(disp, candidate).permute(0, 2, 3, 1)
        better = ok & (after.norm(dim=-1) < residual.norm(dim=-1))
        flow = torch.where(better[..., None], candidate, flow - residual)
    flow = flow.reshape(t, g * g, 2).contiguous()
    for region in rig.regions:
        _exact_inverse_(rig, region, flow, coeffs, pose, gain)
    return flow.view(t, g, g, 2)


def _exact_inverse_(rig, region, flow, coeffs, pose, gain) -> None:
    """Overwrite ``flow [T, h*w, 2]`` at the nodes covered by the region's deformed triangles."""
    t, g, step = len(coeffs), rig.grid, rig.spacing
    moved = displace_points(rig, coeffs, pose, gain, region.vertices)  # [T, V, 2]
    lo = torch.floor(moved.amin(1) / step).clamp(0, g - 1)  # [T, 2] first node (x, y)
    hi = torch.ceil(moved.amax(1) / step).clamp(0, g - 1)
    extent = (hi - lo).amax(0).long() + 1  # same window size for every frame of the batch
    nx, ny = int(extent[0]), int(extent[1])
    lo = torch.minimum(lo, torch.tensor([g - nx, g - ny], device=lo.device)).long()
    jx = lo[:, None, 0] + torch.arange(nx, device=lo.device)  # [T, nx]
    jy = lo[:, None, 1] + torch.arange(ny, device=lo.device)
    node_x = (jx[:, None, :] * step).expand(t, ny, nx).reshape(t, -1, 1)
    node_y = (jy[:, :, None] * step).expand(t, ny, nx).reshape(t, -1, 1)
    index = (jy[:, :, None] * g + jx[:, None, :]).reshape(t, -1)  # [T, P]

    source, covered = inverse_map(region, moved, node_x, node_y)
    nodes = torch.cat([node_x, node_y], -1)
    current = flow.gather(1, index[..., None].expand(-1, -1, 2))
    exact = torch.where(covered[..., None], source - nodes, current)
    flow.scatter_(1, index[..., None].expand(-1, -1, 2), exact)


def inverse_map(
    region: Region, moved: torch.Tensor, x: torch.Tensor, y: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """Rest positions of output points under the region's deformed mesh.

    Args:
        region: the triangles.
        moved: ``[T, V, 2]`` deformed positions of the region's vertices.
        x, y: ``[T, P, 1]`` output points.

    Returns:
        ``source [T, P, 2]`` (rest position of each point) and ``covered [T, P]`` bool: whether
        a deformed triangle holds the point (elsewhere ``source`` is meaningless).
    """
    a, b, c = (moved[:, region.triangles[:, i]] for i in range(3))  # [T, F, 2]
    e1, e2 = b - a, c - a
    det = e1[..., 0] * e2[..., 1] - e1[..., 1] * e2[..., 0]  # [T, F]
    # Triangles squashed flat or flipped over cannot be inverted: they never win.
    valid = det * region.rest_sign > 1e-6
    inv = torch.where(valid, 1.0 / torch.where(valid, det, torch.ones_like(det)), 0.0)
    rx = x - a[:, None, :, 0]  # [T, P, F]
    ry = y - a[:, None, :, 1]
    l1 = (rx * e2[:, None, :, 1] - ry * e2[:, None, :, 0]) * inv[:, None]
    l2 = (ry * e1[:, None, :, 0] - rx * e1[:, None, :, 1]) * inv[:, None]
    score = torch.minimum(torch.minimum(l1, l2), 1 - l1 - l2)
    score = score.masked_fill(~valid[:, None], -math.inf)
    best, face = score.max(-1)  # [T, P]
    w1 = l1.gather(-1, face[..., None])[..., 0]
    w2 = l2.gather(-1, face[..., None])[..., 0]
    tri = region.triangles[face]  # [T, P, 3]
    ra, rb, rc = (region.rest[tri[..., i]] for i in range(3))  # [T, P, 2]
    source = ra + w1[..., None] * (rb - ra) + w2[..., None] * (rc - ra)
    return source, best > -1e-4


def redraw_closing_eye_(
    frames: torch.Tensor,
    image: torch.Tensor,
    rig: FaceRig,
    eye: int,
    coeffs: torch.Tensor,
    pose: torch.Tensor,
    gain: float = 1.0,
) -> None:
    """Re-render a nearly closed eye at full resolution, in place.

    A blink squeezes the eye between the lids into a seam thinner than one grid cell, which a
    coarse flow cannot resolve: bilinear flow across the seam sweeps back through the white of
    the eye. Around the lids of frames whose blink passes 0.4, this samples the portrait
    through the exact inverse of the deformed mesh at every pixel instead, fading in with the
    blink and out at the window's edge.

    Args:
        frames: uint8 ``[T, H, W, 3]`` frames rendered from these coefficients.
        image: uint8 ``[1, H, W, 3]`` the portrait crop.
        rig: the portrait's rig.
        eye: 0 for the image-left eye (``blink_l``), 1 for the other.
        coeffs: ``[T, K]`` coefficients for BASIS_NAMES.
        pose: ``[T, 6]`` head pose.
        gain: head rotation gain.
    """
    closure = coeffs[:, BASIS_NAMES.index(("blink_l", "blink_r")[eye])]
    chosen = (closure > 0.4).nonzero()[:, 0]
    if len(chosen) == 0:
        return
    coeffs, pose = coeffs[chosen], pose[chosen]
    _, height, width, _ = frames.shape
    upper, lower = rig.lids[eye]
    lids = displace_points(rig, coeffs, pose, gain, torch.cat([upper, lower]))
    pad = rig.spacing + 3
    # Each frame fades out at the edge of its own box, so a frame's pixels do not depend on
    # which other frames share its batch; the window is the union of the boxes.
    lo, hi = torch.floor(lids.amin(1) - pad), torch.ceil(lids.amax(1) + pad)  # [n, 2] (x, y)
    x0, y0 = (int(v) for v in lo.amin(0).clamp_min(0).tolist())
    x1, y1 = (int(v) + 1 for v in hi.amax(0).tolist())
    x1, y1 = min(x1, width), min(y1, height)
    if x1 - x0 < 2 or y1 - y0 < 2:
        return
    n, device = len(chosen), frames.device
    xs = torch.arange(x0, x1, device=device, dtype=torch.float32)
    ys = torch.arange(y0, y1, device=device, dtype=torch.float32)
    px = xs[None, :].expand(len(ys), -1).reshape(1, -1, 1).expand(n, -1, -1)
    py = ys[:, None].expand(-1, len(xs)).reshape(1, -1, 1).expand(n, -1, -1)
    region = rig.regions[1 + eye]
    moved = displace_points(rig, coeffs, pose, gain, region.vertices)
    source, covered = inverse_map(region, moved, px, py)
    where = (source * (2.0 / (torch.tensor([width, height], device=device) - 1)) - 1)[:, None]
    portrait = image.permute(0, 3, 1, 2).float().expand(n, -1, -1, -1)
    sampled = F.grid_sample(
        portrait, where, mode="bilinear", padding_mode="border", align_corners=True
    )[:, :, 0].transpose(1, 2)  # [n, P, 3]
    edge = torch.minimum(
        torch.minimum(px[..., 0] - lo[:, None, 0], hi[:, None, 0] - px[..., 0]),
        torch.minimum(py[..., 0] - lo[:, None, 1], hi[:, None, 1] - py[..., 0]),
    )  # [n, P]
    feather = (edge / 3.0).clamp(0, 1)
    ramp = ((closure[chosen] - 0.4) / 0.3).clamp(0, 1)
    alpha = covered * feather * (ramp * ramp * (3 - 2 * ramp))[:, None]
    patch = frames[chosen, y0:y1, x0:x1].float().reshape(n, -1, 3)
    patch = torch.lerp(patch, sampled, alpha[..., None])
    frames[chosen, y0:y1, x0:x1] = (
        (patch + 0.5).clamp(0, 255).to(torch.uint8).reshape(n, y1 - y0, x1 - x0, 3)
    )
