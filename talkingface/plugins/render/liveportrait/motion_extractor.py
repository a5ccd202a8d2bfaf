"""Motion extractor M: a 256² crop -> implicit keypoints, head-pose bins, translation, expression
deltas and scale (LivePortrait's M: ConvNeXt-V2 with seven linear heads; state-dict names as in
`base_models/motion_extractor.pth`, everything under `detector.`)."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from talkingface.plugins.render.liveportrait.model_config import MotionExtractorConfig

__all__ = ["ConvNeXtV2", "MotionExtractor"]

LAYER_NORM_EPS = 1e-6


class ChannelsFirstLayerNorm(nn.Module):
    """LayerNorm over the channel dim of a [B, C, H, W] tensor (eps 1e-6)."""

    def __init__(self, channels: int):
        super().__init__()
        self.weight = nn.Parameter(torch.ones(channels))
        self.bias = nn.Parameter(torch.zeros(channels))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x.permute(0, 2, 3, 1)
        x = F.layer_norm(x, x.shape[-1:], self.weight, self.bias, LAYER_NORM_EPS)
        return x.permute(0, 3, 1, 2)


class GlobalResponseNorm(nn.Module):
    """ConvNeXt-V2's GRN on channels-last input: x + gamma * (x * N(x)) + beta, where N is each
    channel's L2 norm over H, W divided by its mean over channels."""

    def __init__(self, channels: int):
        super().__init__()
        self.gamma = nn.Parameter(torch.zeros(1, 1, 1, channels))
        self.beta = nn.Parameter(torch.zeros(1, 1, 1, channels))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        spatial_norm = torch.linalg.vector_norm(x, dim=(1, 2), keepdim=True)
        relative = spatial_norm / (spatial_norm.mean(dim=-1, keepdim=True) + 1e-6)
        return self.gamma * (x * relative) + self.beta + x


class ConvNeXtBlock(nn.Module):
    """Depthwise 7x7 conv -> LayerNorm -> 4x MLP with GELU and GRN, plus the input."""

    def __init__(self, dim: int):
        super().__init__()
        self.dwconv = nn.Conv2d(dim, dim, kernel_size=7, padding=3, groups=dim)
        self.norm = nn.LayerNorm(dim, eps=LAYER_NORM_EPS)
        self.pwconv1 = nn.Linear(dim, 4 * dim)
        self.grn = GlobalResponseNorm(4 * dim)
        self.pwconv2 = nn.Linear(4 * dim, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.dwconv(x).permute(0, 2, 3, 1)
        out = self.pwconv2(self.grn(F.gelu(self.pwconv1(self.norm(out)))))
        return x + out.permute(0, 3, 1, 2)


class ConvNeXtV2(nn.Module):
    """ConvNeXt-V2 backbone with LivePortrait's heads.

    Shape: image [B, 3, S, S] -> dict of raw head outputs: kp [B, 3K], pitch/yaw/roll
    [B, num_bins] (logits), t [B, 3], exp [B, 3K], scale [B, 1].
    """

    def __init__(self, config: MotionExtractorConfig):
        super().__init__()
        dims = config.dims
        stem = nn.Sequential(
            nn.Conv2d(config.in_channels, dims[0], kernel_size=4, stride=4),
            ChannelsFirstLayerNorm(dims[0]),
        )
        self.downsample_layers = nn.ModuleList([stem])
        for cin, cout in zip(dims[:-1], dims[1:], strict=True):
            self.downsample_layers.append(
                nn.Sequential(ChannelsFirstLayerNorm(cin), nn.Conv2d(cin, cout, 2, stride=2))
            )
        self.stages = nn.ModuleList(
            nn.Sequential(*(ConvNeXtBlock(dim) for _ in range(depth)))
            for dim, depth in zip(dims, config.depths, strict=True)
        )
        self.norm = nn.LayerNorm(dims[-1], eps=LAYER_NORM_EPS)
        width, k3 = dims[-1], 3 * config.num_kp
        self.fc_kp = nn.Linear(width, k3)
        self.fc_scale = nn.Linear(width, 1)
        self.fc_pitch = nn.Linear(width, config.num_bins)
        self.fc_yaw = nn.Linear(width, config.num_bins)
        self.fc_roll = nn.Linear(width, config.num_bins)
        self.fc_t = nn.Linear(width, 3)
        self.fc_exp = nn.Linear(width, k3)

    def forward(self, image: torch.Tensor) -> dict[str, torch.Tensor]:
        x = image
        for downsample, stage in zip(self.downsample_layers, self.stages, strict=True):
            x = stage(downsample(x))
        pooled = self.norm(x.mean(dim=(-2, -1)))
        return {
            "pitch": self.fc_pitch(pooled),
            "yaw": self.fc_yaw(pooled),
            "roll": self.fc_roll(pooled),
            "t": self.fc_t(pooled),
            "exp": self.fc_exp(pooled),
            "scale": self.fc_scale(pooled),
            "kp": self.fc_kp(pooled),
        }


class MotionExtractor(nn.Module):
    """M: the ConvNeXt-V2 `detector` (the checkpoint's key prefix). Raw outputs; see
    `LivePortraitModels.get_kp_info` for degrees and [B, K, 3] shapes."""

    def __init__(self, config: MotionExtractorConfig):
        super().__init__()
        self.config = config
        self.detector = ConvNeXtV2(config)

    def forward(self, image: torch.Tensor) -> dict[str, torch.Tensor]:
        return self.detector(image)
