"""Face measures from landmarks, for metrics and motion extraction: mouth opening, eye openness,
head pose, and the point the head turns about."""

from __future__ import annotations

import numpy as np
import torch

from talkingface.face.landmarks import (
    CHIN,
    EYE_LID_POINTS,
    FACE_OVAL,
    FOREHEAD,
    INNER_LIP_PAIRS,
    LEFT_CHEEK,
    NUM_LANDMARKS,
    RIGHT_CHEEK,
)


def _check_points(points: torch.Tensor, fn: str) -> torch.Tensor:
    if not isinstance(points, torch.Tensor):
        points = torch.as_tensor(np.asarray(points))
    if points.ndim < 2 or points.shape[-2] != NUM_LANDMARKS or points.shape[-1] not in (2, 3):
        raise ValueError(f"{fn} takes landmarks [..., 478, 3], got {tuple(points.shape)}")
    return points if points.is_floating_point() else points.float()


def _dist(points: torch.Tensor, a: int, b: int) -> torch.Tensor:
    return torch.linalg.norm(points[..., a, :] - points[..., b, :], dim=-1)


def mouth_opening(points: torch.Tensor) -> torch.Tensor:
    """Inner-lip gap over face height, ``[..., 478, 3] -> [...]``.

    The gap is the mean distance of the inner-lip pairs 13/14, 82/87 and 312/317; the face
    height is landmark 10 (forehead) to 152 (chin). About 0 with closed lips, 0.1-0.3 open.
    """
    points = _check_points(points, "mouth_opening")
    gap = torch.stack([_dist(points, a, b) for a, b in INNER_LIP_PAIRS], dim=-1).mean(-1)
    return gap / _dist(points, FOREHEAD, CHIN).clamp_min(1e-6)


def eye_openness(points: torch.Tensor) -> torch.Tensor:
    """Eyelid gap over eye width per eye, ``[..., 478, 3] -> [..., 2]`` (image-left eye first).

    Image-left eye: lids 159/145 over corners 33/133; image-right eye: 386/374 over 362/263.
    About 0.3 open, below 0.1 closed.
    """
    points = _check_points(points, "eye_openness")
    ratios = [
        _dist(points, up, down) / _dist(points, outer, inner).clamp_min(1e-6)
        for up, down, outer, inner in EYE_LID_POINTS
    ]
    return torch.stack(ratios, dim=-1)


def head_pose(points: torch.Tensor) -> torch.Tensor:
    """Head rotation from landmarks, ``[..., 478, 3] -> [..., 3]`` yaw, pitch, roll in radians.

    The face frame is built from the 3D landmarks: x along the outer eye corners (33 -> 263),
    y along chin -> forehead (152 -> 10), z their cross product (out of the face). Angles are
    ``R = Ry(yaw) Rx(-pitch) Rz(roll)`` in a camera frame with x right, y up, z to the viewer:
    yaw > 0 turns the nose to the image right, pitch > 0 tilts it up, roll > 0 turns the eye
    line counterclockwise as seen. Good for changes between frames (motion metrics); the
    absolute angles carry a few degrees of face-shape bias.
    """
    points = _check_points(points, "head_pose")
    if points.shape[-1] != 3:
        raise ValueError("head_pose needs 3D landmarks [..., 478, 3]")
    flip = torch.tensor([1.0, -1.0, -1.0], dtype=points.dtype, device=points.device)
    p = points * flip  # image (x right, y down, z away) -> camera (x right, y up, z to viewer)
    x_axis = torch.nn.functional.normalize(p[..., 263, :] - p[..., 33, :], dim=-1)
    up = p[..., FOREHEAD, :] - p[..., CHIN, :]
    y_axis = torch.nn.functional.normalize(
        up - (up * x_axis).sum(-1, keepdim=True) * x_axis, dim=-1
    )
    z_axis = torch.linalg.cross(x_axis, y_axis, dim=-1)
    yaw = torch.atan2(z_axis[..., 0], z_axis[..., 2])
    pitch = torch.asin(z_axis[..., 1].clamp(-1, 1))
    roll = torch.atan2(x_axis[..., 1], y_axis[..., 1])
    return torch.stack([yaw, pitch, roll], dim=-1)


def head_pivot(points: np.ndarray) -> np.ndarray:
    """``[3]`` the point a head turns about, from its landmarks ``[478, 3]`` (numpy): the neck,
    level with the cheekbones, centred on the face oval, at the depth of the face's silhouette
    (the cheek points). The renderers turn heads about it and motion extraction measures
    their translation from it."""
    points = np.asarray(points)
    oval = points[list(FACE_OVAL)]
    cheeks = points[[LEFT_CHEEK, RIGHT_CHEEK]]
    return np.array([oval[:, 0].mean(), cheeks[:, 1].mean(), cheeks[:, 2].mean()])
