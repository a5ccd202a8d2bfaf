"""Aligned face crops: the square, upright crop renderers animate (:func:`align_crop`), and
LivePortrait's crop convention reproduced from our own landmarks (:func:`eye_mouth_crop`)."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import torch

from talkingface.face.analyzer import as_rgb_uint8
from talkingface.face.landmarks import (
    CHIN,
    FOREHEAD,
    JAW,
    LEFT_BROW,
    LEFT_CHEEK,
    LEFT_EYE,
    LIPS_OUTER,
    MOUTH_CORNERS,
    NOSE,
    RIGHT_BROW,
    RIGHT_CHEEK,
    RIGHT_EYE,
    FaceLandmarks,
)
from talkingface.pipeline.contracts import FaceCrop


def align_crop(
    pixels: Any,
    landmarks: FaceLandmarks,
    size: int = 512,
    face_scale: float = 2.0,
    *,
    cubic: bool = False,
) -> FaceCrop:
    """Cut out a square, upright crop of the face.

    A similarity transform: rotated so the eye line is level, scaled so the face (the larger of
    forehead-to-chin and cheek-to-cheek) spans ``size / face_scale`` pixels, and centred a
    little above the face centre so hair and chin both fit. Outside the image the border pixels
    are repeated.

    Args:
        pixels: uint8 ``[H, W, 3]`` RGB, the image ``landmarks`` were found in.
        landmarks: the face, in ``pixels``' coordinates.
        size: side of the crop in pixels.
        face_scale: crop side / face size (2.0 leaves room for hair, neck and background).
        cubic: where the crop enlarges the image, interpolate bicubically instead of
            bilinearly (sharper; what is pasted back then matches the original better).

    Returns:
        A :class:`FaceCrop` with the ``[size, size, 3]`` image, the ``[2, 3]`` matrix and the
        landmarks in crop coordinates.
    """
    import cv2

    image = as_rgb_uint8(pixels)
    # The geometry is a few hundred points: numpy float64, no torch thread-pool overhead.
    pts = landmarks.points.detach().cpu().numpy().astype(np.float64)
    eye_vec = pts[list(RIGHT_EYE), :2].mean(0) - pts[list(LEFT_EYE), :2].mean(0)
    angle = math.atan2(eye_vec[1], eye_vec[0])
    face_h = float(np.linalg.norm(pts[CHIN] - pts[FOREHEAD]))
    face_w = float(np.linalg.norm(pts[RIGHT_CHEEK] - pts[LEFT_CHEEK]))
    face_size = max(face_h, face_w, 1.0)
    scale = size / face_scale / face_size
    cos, sin = math.cos(-angle) * scale, math.sin(-angle) * scale
    rot = np.array([[cos, -sin], [sin, cos]])
    # Centre of the face in the rotated frame, then 10% of the face size towards the forehead.
    rotated = pts[:, :2] @ rot.T
    centre = (rotated.min(0) + rotated.max(0)) / 2
    centre[1] -= 0.1 * face_size * scale
    shift = size / 2 - centre
    matrix = np.concatenate([rot, shift[:, None]], axis=1)
    crop = cv2.warpAffine(
        image, matrix, (size, size),
        flags=cv2.INTER_AREA if scale < 1 else cv2.INTER_CUBIC if cubic else cv2.INTER_LINEAR,
        borderMode=cv2.BORDER_REPLICATE,
    )  # fmt: skip
    crop_pts = np.concatenate([rotated + shift, pts[:, 2:] * scale], axis=1)
    crop_landmarks = FaceLandmarks(
        torch.from_numpy(crop_pts.astype(np.float32)), (size, size), landmarks.score
    )
    return FaceCrop(
        torch.from_numpy(crop), torch.from_numpy(matrix), crop_landmarks, image.shape[:2]
    )


# The points whose box sizes the crop: the jaw line from cheek to cheek, brows, eyes, nose and
# lips, i.e. what a 106-point 2D face landmarker (InsightFace's, which upstream uses) covers;
# the forehead above the brows is left out as it is there.
_BOX_POINTS: tuple[int, ...] = tuple(
    dict.fromkeys((*JAW, *LEFT_BROW, *RIGHT_BROW, *LEFT_EYE, *RIGHT_EYE, *NOSE, *LIPS_OUTER))
)


def eye_mouth_crop(
    pixels: Any,
    landmarks: FaceLandmarks,
    size: int = 512,
    scale: float = 2.3,
    vx_ratio: float = 0.0,
    vy_ratio: float = -0.125,
) -> FaceCrop:
    """Cut out a square crop on the face's eye-to-mouth axis (LivePortrait's crop convention).

    The crop's y axis runs from the midpoint of the eye centres to the midpoint of the mouth
    corners (so roll is undone); the landmarks' box in that frame, made square on its larger
    side and multiplied by ``scale``, is the crop, its centre moved by ``vx_ratio`` and
    ``vy_ratio`` times the crop side along the crop's x and y axes (negative ``vy_ratio``:
    up, towards the forehead). Bilinear, and black outside the image, as upstream's cropper
    (``src/utils/crop.py``, ``src/config/crop_config.py``: scale 2.3, vy_ratio -0.125).
    The box uses the jaw line, brows, eyes, nose and lips of MediaPipe's mesh, the region
    upstream's InsightFace landmarks cover, so no InsightFace model is needed.

    Args:
        pixels: uint8 ``[H, W, 3]`` RGB, the image ``landmarks`` were found in.
        landmarks: the face, in ``pixels``' coordinates.
        size: side of the crop in pixels (upstream crops at 512, then resizes to 256 with an
            area filter for its networks).
        scale: crop side / face box side.
        vx_ratio, vy_ratio: centre shifts in crop sides, along the crop's x and y axes.

    Returns:
        A :class:`FaceCrop` with the ``[size, size, 3]`` image, the ``[2, 3]`` matrix and the
        landmarks in crop coordinates.
    """
    import cv2

    image = as_rgb_uint8(pixels)
    pts = landmarks.points.detach().cpu().numpy().astype(np.float64)
    eyes = (pts[list(LEFT_EYE), :2].mean(0) + pts[list(RIGHT_EYE), :2].mean(0)) / 2
    mouth = pts[list(MOUTH_CORNERS), :2].mean(0)
    axis_y = mouth - eyes
    length = float(np.linalg.norm(axis_y))
    axis_y = axis_y / length if length > 1e-3 else np.array([0.0, 1.0])
    axis_x = np.array([axis_y[1], -axis_y[0]])
    frame = np.stack([axis_x, axis_y])  # rows: the crop's axes in image coordinates
    box = pts[list(_BOX_POINTS), :2] @ frame.T
    lo, hi = box.min(0), box.max(0)
    side = float((hi - lo).max()) * scale
    centre = frame.T @ ((lo + hi) / 2) + (vx_ratio * axis_x + vy_ratio * axis_y) * side
    s = size / max(side, 1e-6)
    rot = s * frame  # image -> crop: project on the crop's axes, then scale
    shift = size / 2 - rot @ centre
    matrix = np.concatenate([rot, shift[:, None]], axis=1)
    crop = cv2.warpAffine(
        image,
        matrix,
        (size, size),
        flags=cv2.INTER_LINEAR,
        borderMode=cv2.BORDER_CONSTANT,
        borderValue=(0, 0, 0),
    )
    crop_pts = np.concatenate([pts[:, :2] @ rot.T + shift, pts[:, 2:] * s], axis=1)
    crop_landmarks = FaceLandmarks(
        torch.from_numpy(crop_pts.astype(np.float32)), (size, size), landmarks.score
    )
    return FaceCrop(
        torch.from_numpy(crop), torch.from_numpy(matrix), crop_landmarks, image.shape[:2]
    )
