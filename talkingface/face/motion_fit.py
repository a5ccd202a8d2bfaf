"""One face's landmarks -> head pose and expression coefficients relative to a rest face: the
per-frame step of motion extraction (:mod:`talkingface.face.motion_track`).

The head pose is fitted to the image positions of the rigid points of the face (the band of
eyes and nose bridge, :data:`RIGID_POINTS`) with the rest face's 3D shape, turning about the
neck as the renderers turn heads (:func:`head_pivot`). With the head removed, a handful of
landmark measures (lip gap and thickness, mouth width, corner height, eyelid gaps, iris offset,
brow height) change about linearly with the expression coefficients, and a non-negative
least-squares solve inverts that map. The map is :data:`MEASURE_BASES`: how ``meshwarp``
renders each coefficient, as the landmarker reads it back, so extraction inverts our renderer.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from talkingface.face.landmarks import CHIN, EYE_LID_POINTS, FOREHEAD, IRISES
from talkingface.face.measures import head_pivot

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
    "jaw_open": (
        0.1423, -0.0100, -0.0019, 0.0282, 0.0602, 0.1289, -0.0047, 0.0820, -0.1360, -0.0588,
        0.0130, 0.0015, 0.0037,
    ),
    "mouth_wide": (
        -0.0060, -0.0067, -0.0005, 0.2263, -0.0068, -0.0112, 0.0025, -0.0034, -0.0241, -0.0415,
        0.0051, -0.0004, 0.0014,
    ),
    "mouth_round": (
        0.0193, 0.0026, -0.0024, -0.4923, 0.0097, 0.0168, -0.0029, 0.0041, -0.0532, -0.0020,
        0.0013, 0.0045, -0.0007,
    ),
    "lip_press": (
        -0.0058, -0.0144, -0.0131, -0.0129, -0.0080, -0.0262, 0.0075, -0.0062, -0.0045, 0.0421,
        -0.0012, -0.0061, -0.0014,
    ),
    "smile": (
        0.0034, -0.0083, 0.0034, 0.1925, -0.0370, -0.0167, -0.0150, -0.0054, -0.0186, -0.0885,
        0.0024, 0.0217, 0.0034,
    ),
    "frown": (
        0.0173, -0.0041, -0.0074, -0.0509, 0.0223, 0.0123, 0.0060, 0.0050, -0.0259, 0.0232,
        -0.0006, -0.0038, -0.0006,
    ),
    "blink_l": (
        0.0009, -0.0010, 0.0017, 0.0082, 0.0040, 0.0086, 0.0070, 0.0065, -0.9044, -0.1050,
        0.0708, 0.0220, 0.0024,
    ),
    "blink_r": (
        -0.0064, -0.0018, 0.0028, 0.0154, -0.0089, -0.0108, -0.0052, 0.0022, -0.0979, -0.8378,
        -0.0679, -0.0035, -0.0042,
    ),
    "brow_up": (
        0.0004, -0.0001, -0.0018, -0.0006, -0.0049, -0.0076, -0.0061, -0.0071, 0.0542, 0.0342,
        0.0132, 0.0232, -0.0305,
    ),
    "brow_down": (
        -0.0008, 0.0009, 0.0020, 0.0108, 0.0039, 0.0057, 0.0036, 0.0122, -0.2323, -0.0538,
        -0.0065, -0.0020, 0.0177,
    ),
    "gaze_x": (0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0.2, 0, 0),
    "gaze_y": (0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, -0.1, 0),
}  # fmt: skip
"""Change of each of :data:`MEASURES` per unit of each coefficient on faces ``meshwarp``
renders (its defaults), as the face landmarker reads them back: distances in rest face heights,
the mouth width and eyelid gaps relative to their rest size, iris offsets in eye widths.
``scripts/calibrate_motion_fit.py`` measures it on the demo portrait (one coefficient at a
time, two strengths, 256 and 512 px) and prints the table; a test keeps it in step with the
renderer. Gaze is the exception: its rows are the iris shift the coefficient means (0.2 and
0.1 eye widths), because the landmarker reads meshwarp's iris shift at about a third of that
horizontally and not at all vertically, and a table calibrated on it would triple real gaze."""

MEASURE_NOISE: tuple[float, ...] = (
    0.007, 0.004, 0.005, 0.025, 0.004, 0.009, 0.007, 0.01, 0.1, 0.1, 0.017, 0.006, 0.002,
)  # fmt: skip
"""How far each measure strays from :data:`MEASURE_BASES` (RMS over rendered talking clips:
landmark jitter, and the coefficients' effects not adding up exactly), same units: the
least-squares solve weighs each measure by its inverse. The eyelid gaps are the least
reliable (10 %), the brow height the most."""

_RIDGE = 3.0
"""Weight of the small penalty on the coefficients' size in the solve (per unit coefficient, in
units of measure noise): it picks the smallest combination where two coefficients move the
measures alike (mouth_wide against mouth_round, smile against frown)."""
_UPPER = {"jaw_open": 1.3}  # coefficients may exceed 1 only where the renderers allow it
_SIGNED = ("gaze_x", "gaze_y")
_OPPOSED = (("mouth_wide", "mouth_round"), ("smile", "frown"), ("brow_up", "brow_down"))


def face_height(points: np.ndarray) -> float:
    """Forehead-to-chin distance in the image plane (the unit of ``tx``, ``ty``)."""
    return float(np.linalg.norm(points[FOREHEAD, :2] - points[CHIN, :2]))


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


def rotation_matrix(yaw: float, pitch: float, roll: float) -> np.ndarray:
    """``[3, 3]`` rotation in image axes (x right, y down, z away) for the renderers' angles:
    ``R = F Ry(yaw) Rx(-pitch) Rz(roll) F`` with ``F = diag(1, -1, -1)`` (the convention of
    ``talkingface.face.head_pose``)."""
    cy, sy = math.cos(yaw), math.sin(yaw)
    cp, sp = math.cos(-pitch), math.sin(-pitch)
    cr, sr = math.cos(roll), math.sin(roll)
    ry = np.array([[cy, 0, sy], [0, 1, 0], [-sy, 0, cy]])
    rx = np.array([[1, 0, 0], [0, cp, -sp], [0, sp, cp]])
    rz = np.array([[cr, -sr, 0], [sr, cr, 0], [0, 0, 1]])
    flip = np.array([1.0, -1.0, -1.0])
    return flip[:, None] * (ry @ rx @ rz) * flip[None, :]


def rotation_angles(rot: np.ndarray) -> tuple[float, float, float]:
    """yaw, pitch, roll (radians) of a rotation in image axes: the inverse of
    :func:`rotation_matrix`."""
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
        """The rest face of landmarks ``[478, 3]``."""
        points = np.asarray(points, dtype=np.float64)
        height = max(face_height(points), 1e-6)
        measures = face_measures(points, points, height)
        return RestFace(points, measures, height, head_pivot(points), frame)


_MOUTH_MEASURES = 8
"""The first eight of :data:`MEASURES` describe the mouth (lips, width, corners, chin)."""


def neutral_change(changes: np.ndarray) -> np.ndarray:
    """``[M]`` the measures of a clip's neutral face, as changes from its rest face, from the
    changes of its face frames ``[N, M]``: the mouth as in its most closed frames (the mean of
    the mouth measures where the lip gap is at most its 10th percentile), the eyes as open as
    they usually are (90th percentile: blinks are brief), the rest at their medians. For a rest
    frame caught mid-word or mid-blink."""
    out = np.median(changes, axis=0)
    gap = changes[:, MEASURES.index("lip_gap")]
    closed = gap <= np.percentile(gap, 10)
    out[:_MOUTH_MEASURES] = changes[closed, :_MOUTH_MEASURES].mean(0)
    for eye in ("eye_l", "eye_r"):
        out[MEASURES.index(eye)] = np.percentile(changes[:, MEASURES.index(eye)], 90)
    return out


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
        column = {FIT_NAMES[i]: c for c, (i, sign) in enumerate(signs) if sign > 0}
        self._opposed = [(column[a], column[b]) for a, b in _OPPOSED]

    def fit(self, points: np.ndarray) -> FrameFit:
        """Pose and expression of one face ``points [478, 3]`` (same image units as the rest)."""
        pose, change, residual = self.measure(points)
        return FrameFit(pose, self.solve(change), residual)

    def solve(self, change: np.ndarray) -> np.ndarray:
        """Expression coefficients ``[K]`` (FIT_NAMES) from a measure change ``[M]``."""
        from scipy.optimize import nnls

        target = np.concatenate([change * self._weight, np.zeros(len(self._signs))])
        columns = np.arange(len(self._signs))
        solution, cost = nnls(self._matrix, target)
        # Opposing coefficients (wide / round, smile / frown, brows up / down) never act at
        # once: a pair that both come out non-zero would only be cancelling out on their shared
        # measure to fit some other one. Keep whichever of the two alone fits better.
        for a, b in self._opposed:
            if solution[a] > 0 and solution[b] > 0:
                best = None
                for drop in (a, b):
                    keep = columns[columns != drop]
                    part, part_cost = nnls(self._matrix[:, keep], target)
                    if best is None or part_cost < best[1]:
                        best = (np.zeros(len(columns)), part_cost)
                        best[0][keep] = part
                solution, cost = best
        expression = np.zeros(len(FIT_NAMES))
        for value, (index, sign) in zip(solution, self._signs, strict=True):
            expression[index] += sign * value
        return np.clip(expression, np.where(self._signed_mask, -1.0, 0.0), self._upper)

    def measure(self, points: np.ndarray) -> tuple[np.ndarray, np.ndarray, float]:
        """``(pose [6], measure change [M], residual)`` of one face ``points [478, 3]``.

        The head pose is fitted to the image positions of the rigid points only (the
        landmarker's depth of the current frame is a guess from appearance), with the rest
        face's 3D shape: ``xy = s R (q - c) + c + d`` as the renderers turn and move a head.
        What the pose does not explain is the expression, turned back into the rest frame and
        measured there (:func:`face_measures`, minus the rest face's).
        """
        rest = self.rest
        points = np.asarray(points, dtype=np.float64)
        rigid = list(RIGID_POINTS)
        pose = self._head_pose(points[rigid, :2], rest.points[rigid] - rest.pivot, points)
        rot = rotation_matrix(*pose[:3])
        scale, shift = pose[5], rest.pivot[:2] + pose[3:5] * rest.face_height
        posed = scale * (rest.points - rest.pivot) @ rot[:2].T + shift
        error = np.linalg.norm(posed[rigid] - points[rigid, :2], axis=1)
        residual = float(np.sqrt((error**2).mean())) / (scale * rest.face_height)
        # The renderers turn the expression with the head: xy = posed + s R2 e.
        offsets = np.linalg.solve(rot[:2, :2], (points[:, :2] - posed).T).T / scale
        aligned = rest.points.copy()
        aligned[:, :2] += offsets
        change = face_measures(aligned, rest.points, rest.face_height) - rest.measures
        return pose, change, residual

    def _head_pose(self, observed: np.ndarray, shape: np.ndarray, points: np.ndarray) -> np.ndarray:
        """``[6]`` pose whose projection of ``shape [N, 3]`` (rest rigid points about the pivot)
        best matches ``observed [N, 2]``; started from a 3D similarity fit of ``points``."""
        from scipy.optimize import least_squares

        rest = self.rest
        rigid = list(RIGID_POINTS)
        scale, rot, shift = similarity_fit(rest.points[rigid], points[rigid])
        move = (shift + scale * rot @ rest.pivot - rest.pivot) / rest.face_height
        start = np.array([*rotation_angles(rot), move[0], move[1], scale])
        pivot, height = rest.pivot[:2], rest.face_height

        def residuals(p: np.ndarray) -> np.ndarray:
            r = rotation_matrix(p[0], p[1], p[2])[:2]
            return (p[5] * shape @ r.T + pivot + p[3:5] * height - observed).ravel() / height

        return least_squares(residuals, start, method="lm", xtol=1e-10, ftol=1e-10).x

    @property
    def _signed_mask(self) -> np.ndarray:
        return np.array([n in _SIGNED for n in FIT_NAMES])
