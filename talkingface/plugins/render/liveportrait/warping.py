"""Warping module W of LivePortrait: from source and driving keypoints, a dense 3D motion field
with an occlusion map; the source feature volume is warped through it (trilinear, via
`talkingface.kernels.warp3d`) and flattened into the 2D features the decoder G reads.
State-dict names as in `base_models/warping_module.pth`."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from talkingface.kernels import warp3d
from talkingface.plugins.render.liveportrait.layers import (
    Hourglass,
    SameBlock2d,
    coordinate_grid,
    keypoint_heatmaps,
)
from talkingface.plugins.render.liveportrait.model_config import DenseMotionConfig, WarpingConfig

__all__ = ["DenseMotionNetwork", "WarpingNetwork"]


class DenseMotionNetwork(nn.Module):
    """Blend K + 1 candidate motions (identity for the background, one rigid shift per
    keypoint) with a softmax mask predicted by a 3D hourglass; optionally an occlusion map.

    Shape: volume [B, C, D, H, W], keypoints [B, K, 3] -> deformation [B, D, H, W, 3] (source
    sampling points in -1..1), mask [B, K+1, D, H, W], occlusion_map [B, 1, H, W].
    """

    def __init__(
        self,
        config: DenseMotionConfig,
        num_kp: int,
        feature_channel: int,
        estimate_occlusion_map: bool,
        kernel_backend: str | None = None,
    ):
        super().__init__()
        self.num_kp = num_kp
        self.kernel_backend = kernel_backend
        self.hourglass = Hourglass(
            config.block_expansion,
            (num_kp + 1) * (config.compress + 1),
            config.num_blocks,
            config.max_features,
        )
        out_filters = self.hourglass.out_filters
        self.mask = nn.Conv3d(out_filters, num_kp + 1, kernel_size=7, padding=3)
        self.compress = nn.Conv3d(feature_channel, config.compress, kernel_size=1)
        self.norm = nn.BatchNorm3d(config.compress)
        self.occlusion = (
            nn.Conv2d(out_filters * config.reshape_depth, 1, kernel_size=7, padding=3)
            if estimate_occlusion_map
            else None
        )

    def sparse_motions(self, volume, kp_source, kp_driving):
        """[B, K+1, D, H, W, 3]: where each voxel samples the source under each candidate."""
        batch, _, depth, height, width = volume.shape
        identity = coordinate_grid(depth, height, width, dtype=volume.dtype, device=volume.device)
        identity = identity[None, None]
        # The driving keypoint k maps to source keypoint k by a pure translation (no Jacobian).
        drive = kp_driving[:, :, None, None, None, :]
        source = kp_source[:, :, None, None, None, :]
        per_keypoint = identity - drive + source
        background = identity.expand(batch, 1, depth, height, width, 3)
        return torch.cat([background, per_keypoint], dim=1)

    def forward(self, volume, kp_source, kp_driving) -> dict[str, torch.Tensor]:
        feature = F.relu(self.norm(self.compress(volume)))
        batch, channels, depth, height, width = feature.shape
        candidates = self.num_kp + 1
        motions = self.sparse_motions(feature, kp_source, kp_driving)

        repeated = feature[:, None].expand(batch, candidates, channels, depth, height, width)
        deformed = warp3d(
            repeated.reshape(batch * candidates, channels, depth, height, width),
            motions.reshape(batch * candidates, depth, height, width, 3),
            backend=self.kernel_backend,
        ).view(batch, candidates, channels, depth, height, width)

        heatmap = keypoint_heatmaps(kp_driving, depth, height, width) - keypoint_heatmaps(
            kp_source, depth, height, width
        )
        heatmap = torch.cat([torch.zeros_like(heatmap[:, :1]), heatmap], dim=1)
        hourglass_in = torch.cat([heatmap[:, :, None], deformed], dim=2)
        prediction = self.hourglass(hourglass_in.view(batch, -1, depth, height, width))

        mask = F.softmax(self.mask(prediction), dim=1)
        deformation = (motions * mask[..., None]).sum(dim=1)
        out = {"mask": mask, "deformation": deformation}
        if self.occlusion is not None:
            flat = prediction.reshape(batch, -1, height, width)
            out["occlusion_map"] = torch.sigmoid(self.occlusion(flat))
        return out


class WarpingNetwork(nn.Module):
    """W: warp the feature volume by the keypoint motion, flatten depth into channels, project.

    Shape: volume [B, C, D, H, W], kp_source and kp_driving [B, K, 3] -> dict with `out`
    [B, out_channels, H, W] (occlusion applied), `deformation` [B, D, H, W, 3] and
    `occlusion_map` [B, 1, H, W] (None without occlusion estimation).
    """

    def __init__(self, config: WarpingConfig, kernel_backend: str | None = None):
        super().__init__()
        self.config = config
        self.kernel_backend = kernel_backend
        self.dense_motion_network = DenseMotionNetwork(
            config.dense_motion,
            config.num_kp,
            config.reshape_channel,
            config.estimate_occlusion_map,
            kernel_backend,
        )
        channels = config.out_channels
        self.third = SameBlock2d(config.max_features, channels, leaky=True)
        self.fourth = nn.Conv2d(channels, channels, kernel_size=1)

    def set_kernel_backend(self, backend: str | None) -> None:
        """Choose the warp3d backend ("auto", "torch", "triton"; None: the process default)."""
        self.kernel_backend = backend
        self.dense_motion_network.kernel_backend = backend

    def forward(self, volume, kp_source, kp_driving) -> dict[str, torch.Tensor | None]:
        motion = self.dense_motion_network(volume, kp_source, kp_driving)
        deformation = motion["deformation"]
        warped = warp3d(volume, deformation, backend=self.kernel_backend)
        batch, channels, depth, height, width = warped.shape
        out = self.fourth(self.third(warped.view(batch, channels * depth, height, width)))
        occlusion_map = motion.get("occlusion_map")
        if occlusion_map is not None:
            out = out * occlusion_map
        return {"out": out, "deformation": deformation, "occlusion_map": occlusion_map}
