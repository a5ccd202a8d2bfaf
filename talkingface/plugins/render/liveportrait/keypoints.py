"""LivePortrait's keypoint geometry: pose-bin logits -> degrees, the head rotation matrix, and
the transform of canonical keypoints by pose, expression, scale and translation (the paper's
Eq. 2, as upstream's `src/utils/camera.py` and wrapper apply it)."""

from __future__ import annotations

import math

import torch

__all__ = [
    "BIN_DEGREES",
    "BIN_OFFSET_DEGREES",
    "pose_bins_to_degrees",
    "rotation_matrix",
    "transform_keypoints",
]

BIN_DEGREES = 3.0
"""Width of one pose bin."""
BIN_OFFSET_DEGREES = 97.5
"""Minus the angle of bin 0: degrees = E[bin index] * 3 - 97.5 (66 bins: -97.5..97.5)."""


def pose_bins_to_degrees(logits: torch.Tensor) -> torch.Tensor:
    """Expected angle of a pose head's bins: softmax over bins, expectation of the bin index,
    times 3, minus 97.5.

    Shape: [B, num_bins] -> [B, 1] degrees.
    """
    index = torch.arange(logits.shape[-1], dtype=logits.dtype, device=logits.device)
    expected = (torch.softmax(logits, dim=-1) * index).sum(dim=-1, keepdim=True)
    return expected * BIN_DEGREES - BIN_OFFSET_DEGREES


def rotation_matrix(pitch: torch.Tensor, yaw: torch.Tensor, roll: torch.Tensor) -> torch.Tensor:
    """Head rotation from Euler angles in degrees, as the matrix keypoints are *right*-multiplied
    by: (Rz(roll) @ Ry(yaw) @ Rx(pitch)) transposed, so rotated = kp @ R.

    Shape: pitch, yaw, roll [B, 1] or [B] -> [B, 3, 3].
    """
    x, y, z = (angle.reshape(-1) * (math.pi / 180) for angle in (pitch, yaw, roll))
    one, zero = torch.ones_like(x), torch.zeros_like(x)

    def matrix(*rows):
        return torch.stack([torch.stack(row, dim=-1) for row in rows], dim=-2)

    cx, sx, cy, sy, cz, sz = x.cos(), x.sin(), y.cos(), y.sin(), z.cos(), z.sin()
    rot_x = matrix((one, zero, zero), (zero, cx, -sx), (zero, sx, cx))
    rot_y = matrix((cy, zero, sy), (zero, one, zero), (-sy, zero, cy))
    rot_z = matrix((cz, -sz, zero), (sz, cz, zero), (zero, zero, one))
    return (rot_z @ rot_y @ rot_x).transpose(1, 2)


def transform_keypoints(
    kp: torch.Tensor,
    pitch: torch.Tensor,
    yaw: torch.Tensor,
    roll: torch.Tensor,
    exp: torch.Tensor,
    scale: torch.Tensor,
    t: torch.Tensor,
) -> torch.Tensor:
    """x = scale * (x_c @ R(pitch, yaw, roll) + exp) + (tx, ty, 0): canonical keypoints posed.

    Shape: kp, exp [B, K, 3] (or [B, 3K]); pitch, yaw, roll [B, 1] degrees; scale [B, 1];
    t [B, 3] (its z is ignored) -> [B, K, 3].
    """
    batch = kp.shape[0]
    kp = kp.reshape(batch, -1, 3)
    posed = kp @ rotation_matrix(pitch, yaw, roll) + exp.reshape(batch, -1, 3)
    posed = posed * scale.reshape(batch, 1, 1)
    shift = torch.cat([t[:, :2], torch.zeros_like(t[:, :1])], dim=-1)
    return posed + shift[:, None, :]
