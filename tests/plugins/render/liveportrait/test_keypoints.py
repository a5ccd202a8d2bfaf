"""Keypoint geometry: pose bins -> degrees, the rotation matrix and the keypoint transform."""

from __future__ import annotations

import math

import pytest
import torch

from talkingface.plugins.render.liveportrait.keypoints import (
    pose_bins_to_degrees,
    rotation_matrix,
    transform_keypoints,
)


def test_pose_bins_to_degrees():
    one_hot = torch.full((3, 66), -1e4)
    one_hot[0, 0] = one_hot[1, 65] = one_hot[2, 33] = 0.0
    assert pose_bins_to_degrees(one_hot).squeeze(1).tolist() == pytest.approx([-97.5, 97.5, 1.5])
    # Uniform logits: expected index 32.5 -> 0 degrees.
    assert pose_bins_to_degrees(torch.zeros(1, 66)).item() == pytest.approx(0.0, abs=1e-4)
    assert pose_bins_to_degrees(torch.zeros(4, 66)).shape == (4, 1)


def test_rotation_matrix_is_a_rotation_and_composes_roll_yaw_pitch():
    angles = torch.tensor([[10.0], [-25.0], [40.0]])
    rot = rotation_matrix(angles[0:1], angles[1:2], angles[2:3])[0]
    torch.testing.assert_close(rot @ rot.T, torch.eye(3), atol=1e-6, rtol=0)
    assert torch.det(rot).item() == pytest.approx(1.0, abs=1e-6)
    torch.testing.assert_close(
        rotation_matrix(torch.zeros(2, 1), torch.zeros(2, 1), torch.zeros(2, 1)),
        torch.eye(3).expand(2, 3, 3),
    )
    # Pure yaw of 90 degrees: keypoints are right-multiplied, so x = (1, 0, 0) goes to
    # row 0 of R, which is (cos, 0, -sin) for Ry transposed.
    yaw = rotation_matrix(torch.zeros(1, 1), torch.full((1, 1), 90.0), torch.zeros(1, 1))
    torch.testing.assert_close(
        torch.tensor([[1.0, 0.0, 0.0]]) @ yaw[0],
        torch.tensor([[0.0, 0.0, -1.0]]),
        atol=1e-6,
        rtol=0,
    )


def test_transform_keypoints_is_scale_rotate_add_exp_shift_xy():
    gen = torch.Generator().manual_seed(0)
    kp, exp = torch.randn(2, 21, 3, generator=gen), torch.randn(2, 21, 3, generator=gen)
    pitch, yaw, roll = (torch.randn(2, 1, generator=gen) * 20 for _ in range(3))
    scale, t = torch.rand(2, 1, generator=gen) + 0.5, torch.randn(2, 3, generator=gen)
    out = transform_keypoints(kp, pitch, yaw, roll, exp, scale, t)
    expected = scale[:, :, None] * (kp @ rotation_matrix(pitch, yaw, roll) + exp)
    expected[..., 0] += t[:, None, 0]
    expected[..., 1] += t[:, None, 1]
    torch.testing.assert_close(out, expected)
    # t's z never moves the keypoints.
    t_z = t.clone()
    t_z[:, 2] += 5
    torch.testing.assert_close(transform_keypoints(kp, pitch, yaw, roll, exp, scale, t_z), out)
    assert math.isfinite(out.sum().item())
