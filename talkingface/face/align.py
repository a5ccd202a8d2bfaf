"""Aligned face crops: the square, upright crop renderers animate (:func:`align_crop`)."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import torch

from talkingface.face.analyzer import as_rgb_uint8
from talkingface.face.landmarks import (
    CHIN,
    FOREHEAD,
    LEFT_CHEEK,
    LEFT_EYE,
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
