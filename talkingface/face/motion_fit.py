"""One face's landmarks -> head pose and expression coefficients relative to a rest face: the
per-frame step of motion extraction (:mod:`talkingface.face.motion_track`).

The head is a similarity fit (Umeyama) of the rigid points of the face (nose, eye corners,
temples, cheekbones) onto the rest face's; with the head removed, a handful of landmark measures
(lip gap and thickness, mouth width, corner height, eyelid gaps, iris offsets, brow height)
change linearly with the expression coefficients, and a non-negative least-squares solve
inverts that map. The map is :data:`MEASURE_BASES`, the landmark displacement that ``meshwarp``
renders per unit coefficient, so extraction reads back the motion that drove a render.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from scipy.optimize import nnls

from talkingface.face.landmarks import (
    CHIN,
    EYE_LID_POINTS,
    FACE_OVAL,
    FOREHEAD,
    IRISES,
    LEFT_CHEEK,
    RIGHT_CHEEK,
)

FIT_NAMES: tuple[str, ...] = (
    "jaw_open", "mouth_wide", "mouth_round", "lip_press", "smile", "frown",
    "blink_l", "blink_r", "brow_up", "brow_down", "gaze_x", "gaze_y",
)  # fmt: skip
"""The expression coefficients extraction produces (``cheek_puff`` and ``tongue`` are not
measurable from the landmarks)."""

RIGID_POINTS: tuple[int, ...] = (
    168, 6, 197, 195,  # nose bridge
    33, 133, 263, 362, 226, 446, 35, 265, 143, 372,  # eye corners and their outer skin
    245, 465, 122, 351, 193, 417, 188, 412, 114, 343,  # between the eyes and beside the nose
    111, 340,  # under the eyes
)  # fmt: skip
"""Landmarks that move with the head but hardly with the expressions: the head fit uses them.
The band of eyes and nose bridge; the face oval, the forehead and the nose tip are left out,
because the landmarker moves them when the jaw opens or the brows lift (on the demo
portrait the oval and nose tip move 3.5x more on a jaw drop than this band)."""

MEASURES: tuple[str, ...] = (
    "lip_gap", "upper_lip", "lower_lip", "mouth_width", "corner_y", "lower_lip_y",
    "upper_lip_y", "chin_y", "eye_l", "eye_r", "iris_x", "iris_y", "brow_y",
)  # fmt: skip
"""The landmark measures, each as a change from the rest face (see :func:`face_measures`)."""

MEASURE_BASES: dict[str, tuple[float, ...]] = {
    "jaw_open": (0.1290, 0, 0.0025, 0, 0.0546, 0.1325, 0, 0.1084, 0, 0, 0, 0, 0),
    "mouth_wide": (-0.0006, -0.0048, -0.0064, 0.2600, 0, -0.0067, 0.0051, 0, 0, 0, 0, 0, 0),
    "mouth_round": (0.0008, 0.0057, 0.0077, -0.3999, 0, 0.0081, -0.0061, 0, 0, 0, 0, 0, 0),
    "lip_press": (
        -0.0064, -0.0167, -0.0224, -0.0400, -0.0001, -0.0264, 0.0193, 0, 0, 0, 0, 0, 0,
    ),
    "smile": (
        -0.0001, -0.0038, 0.0060, 0.1797, -0.0365, -0.0115, -0.0136, 0.0129, -0.0103, -0.0102,
        0, 0.0002, 0.0006,
    ),
    "frown": (0, 0.0020, -0.0031, -0.0599, 0.0227, 0.0049, 0.0060, -0.0020, 0, 0, 0, 0, 0),
    "blink_l": (0, 0, 0, 0, 0, 0, 0, 0, -1.0192, 0, 0, 0.0527, 0),
    "blink_r": (0, 0, 0, 0, 0, 0, 0, 0, 0, -1.0159, 0, 0.0465, 0),
    "brow_up": (0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, -0.0395),
    "brow_down": (0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0.0237),
    "gaze_x": (0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0.2000, 0, 0),
    "gaze_y": (0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, -0.1000, 0),
}  # fmt: skip
"""Change of each of :data:`MEASURES` per unit of each coefficient, as ``meshwarp`` renders it
(its default ``jaw_drop`` 0.13), from the displacement its rig gives the demo portrait's
landmarks (``scripts/calibrate_motion_fit.py`` prints this table; a test keeps it in step with
the renderer). Distances are in rest face heights, the mouth width and eyelid gaps relative to
their rest size, iris offsets in eye widths."""

MEASURE_NOISE: tuple[float, ...] = (
    0.004, 0.008, 0.008, 0.02, 0.005, 0.008, 0.008, 0.01, 0.08, 0.08, 0.03, 0.03, 0.004,
)  # fmt: skip
"""How far each measure strays from :data:`MEASURE_BASES` on rendered and real faces (landmark
jitter, and what the landmarker reads into a face beyond the rig's geometry: it narrows the
eyes of a smile and thins the lips of a wide mouth), same units: the least-squares solve weighs
each measure by its inverse."""

_RIDGE = 0.5
"""Weight of the small penalty on the coefficients' size in the solve (per unit coefficient, in
units of measure noise): it picks the smallest combination where two coefficients move the
measures alike (mouth_wide against mouth_round, smile against frown)."""
_UPPER = {"jaw_open": 1.3}  # coefficients may exceed 1 only where the renderers allow it
_SIGNED = ("gaze_x", "gaze_y")


def face_height(points: np.ndarray) -> float:
    """Forehead-to-chin distance in the image plane (the unit of ``tx``, ``ty``)."""
    return float(np.linalg.norm(points[FOREHEAD, :2] - points[CHIN, :2]))


def head_pivot(points: np.ndarray) -> np.ndarray:
    """``[3]`` the point the head turns about, from its landmarks ``[478, 3]``: level with the
    cheekbones, centred on the face oval, at the depth of the face's silhouette."""
    oval = points[list(FACE_OVAL)]
    cheeks = points[[LEFT_CHEEK, RIGHT_CHEEK]]
    return np.array([oval[:, 0].mean(), cheeks[:, 1].mean(), cheeks[:, 2].mean()])


def similarity_fit(source: np.ndarray, target: np.ndarray) -> tuple[float, np.ndarray, np.ndarray]:
    """Least-squares ``target ~ s R source + t`` (Umeyama 1991) for point sets ``[N, 3]``:
    returns ``(s, R [3, 3], t [3])`` with ``R`` a proper rotation."""
    mu_s, mu_t = source.mean(0), target.mean(0)
    a, b = source - mu_s, target - mu_t
    cov = b.T @ a / len(a)
    u, sing, vt = np.linalg.svd(cov)
    fix = np.eye(3)
    fix[2, 2] = np.sign(np.linalg.det(u) * np.linalg.det(vt)) or 1.0
    rot = u @ fix @ vt
    var = (a**2).sum() / len(a)
    scale = float((sing * np.diag(fix)).sum() / max(var, 1e-12))
    return scale, rot, mu_t - scale * rot @ mu_s


def rotation_angles(rot: np.ndarray) -> tuple[float, float, float]:
    """yaw, pitch, roll (radians) of a rotation in image axes (x right, y down, z away), in
    the convention of ``talkingface.face.head_pose`` and the renderers' pose: ``R = F Ry(yaw)
    Rx(-pitch) Rz(roll) F`` with ``F = diag(1, -1, -1)``."""
    flip = np.array([1.0, -1.0, -1.0])
    m = flip[:, None] * rot * flip[None, :]
    pitch = math.asin(max(-1.0, min(1.0, m[1, 2])))
    yaw = math.atan2(m[0, 2], m[2, 2])
    roll = math.atan2(m[1, 0], m[1, 1])
    return yaw, pitch, roll


@dataclass(frozen=True)
class RestFace:
    """The face a track is measured against (its rest pose and neutral expression).

    Attributes:
        points: float64 ``[478, 3]`` its landmarks, in the pixels of the image it was found in.
        measures: float64 ``[M]`` its :func:`face_measures` (the zero of every coefficient).
        face_height: forehead-to-chin distance, pixels.
        pivot: float64 ``[3]`` its :func:`head_pivot`.
        frame: index of the video frame it came from (-1 when given separately).
    """

    points: np.ndarray
    measures: np.ndarray
    face_height: float
    pivot: np.ndarray
    frame: int = -1

    @staticmethod
    def from_points(points: np.ndarray, frame: int = -1) -> RestFace:
        points = np.asarray(points, dtype=np.float64)
        height = max(face_height(points), 1e-6)
        return RestFace(
            points, face_measures(points, points, height), height, head_pivot(points), frame
        )


def face_measures(points: np.ndarray, rest: np.ndarray, height: float) -> np.ndarray:
    """The :data:`MEASURES` ``[M]`` of ``points [478, 3]`` (already aligned to the rest face's
    head), in the units of :data:`MEASURE_BASES`; ``rest [478, 3]`` gives the units of the
    mouth width and the eyelid gaps."""
    x, y = points[:, 0], points[:, 1]
    gap = np.mean([y[b] - y[a] for a, b in ((13, 14), (82, 87), (312, 317))])
    rest_width = max(rest[291, 0] - rest[61, 0], 1e-6)
    eyes, iris_x, iris_y = [], [], []
    for (up, down, outer, inner), iris in zip(EYE_LID_POINTS, IRISES, strict=True):
        width = max(abs(x[inner] - x[outer]), 1e-6)
        rest_open = (rest[down, 1] - rest[up, 1]) / max(abs(rest[inner, 0] - rest[outer, 0]), 1e-6)
        eyes.append((y[down] - y[up]) / width / max(rest_open, 1e-3))
        iris_x.append((x[iris[0]] - (x[outer] + x[inner]) / 2) / width)
        iris_y.append((y[iris[0]] - (y[outer] + y[inner]) / 2) / width)
    brows = np.mean([
        y[[70, 63, 105, 66, 107]].mean() - (y[33] + y[133]) / 2,
        y[[300, 293, 334, 296, 336]].mean() - (y[263] + y[362]) / 2,
    ])  # fmt: skip
    nose = y[2]
    return np.array([
        gap / height,
        (y[13] - y[0]) / height,
        (y[17] - y[14]) / height,
        (x[291] - x[61]) / rest_width,
        ((y[61] + y[291]) / 2 - nose) / height,
        (y[17] - nose) / height,
        (y[0] - nose) / height,
        (y[CHIN] - nose) / height,
        eyes[0],
        eyes[1],
        float(np.mean(iris_x)),
        float(np.mean(iris_y)),
        brows / height,
    ])  # fmt: skip


@dataclass(frozen=True)
class FrameFit:
    """One frame's fit against the rest face.

    Attributes:
        pose: float64 ``[6]`` yaw, pitch, roll (radians), tx, ty (rest face heights), scale.
        expression: float64 ``[K]`` coefficients named by :data:`FIT_NAMES`.
        residual: RMS distance of the rigid points after the head fit, in rest face heights.
    """

    pose: np.ndarray
    expression: np.ndarray
    residual: float


class MotionFitter:
    """Fits frames against one rest face (build once per track, call per frame)."""

    def __init__(self, rest: RestFace) -> None:
        self.rest = rest
        # Unknowns: every coefficient, with the signed ones split into a + and a - column.
        columns, signs = [], []
        for name in FIT_NAMES:
            base = np.asarray(MEASURE_BASES[name], dtype=np.float64)
            columns.append(base)
            signs.append((FIT_NAMES.index(name), 1.0))
            if name in _SIGNED:
                columns.append(-base)
                signs.append((FIT_NAMES.index(name), -1.0))
        weight = 1.0 / np.asarray(MEASURE_NOISE)
        matrix = np.stack(columns, 1) * weight[:, None]  # [M, C]
        self._matrix = np.concatenate([matrix, _RIDGE * np.eye(len(columns))])
        self._weight = weight
        self._signs = signs
        self._upper = np.array([_UPPER.get(n, 1.0) for n in FIT_NAMES])

    def fit(self, points: np.ndarray) -> FrameFit:
        """Pose and expression of one face ``points [478, 3]`` (same image units as the rest)."""
        rest = self.rest
        points = np.asarray(points, dtype=np.float64)
        rigid = list(RIGID_POINTS)
        scale, rot, shift = similarity_fit(rest.points[rigid], points[rigid])
        posed = scale * rest.points[rigid] @ rot.T + shift
        residual = float(np.sqrt(((posed - points[rigid]) ** 2).sum(1).mean()))
        residual /= scale * rest.face_height
        yaw, pitch, roll = rotation_angles(rot)
        # The renderers turn the head about its pivot, then shift it: p = sR(q - c) + c + d.
        move = (shift + scale * rot @ rest.pivot - rest.pivot) / rest.face_height
        pose = np.array([yaw, pitch, roll, move[0], move[1], scale])
        aligned = (points - shift) @ rot / scale  # back into the rest face's frame
        change = face_measures(aligned, rest.points, rest.face_height) - rest.measures
        target = np.concatenate([change * self._weight, np.zeros(len(self._signs))])
        solution, _ = nnls(self._matrix, target)
        expression = np.zeros(len(FIT_NAMES))
        for value, (index, sign) in zip(solution, self._signs, strict=True):
            expression[index] += sign * value
        expression = np.clip(expression, np.where(self._signed_mask, -1.0, 0.0), self._upper)
        return FrameFit(pose, expression, residual)

    @property
    def _signed_mask(self) -> np.ndarray:
        return np.array([n in _SIGNED for n in FIT_NAMES])
