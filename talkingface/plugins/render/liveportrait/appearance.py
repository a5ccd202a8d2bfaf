"""Appearance feature extractor F: a 256² portrait crop -> the 3D feature volume f_s that W warps
(LivePortrait's F; state-dict names as in `base_models/appearance_feature_extractor.pth`)."""

from __future__ import annotations

import torch
from torch import nn

from talkingface.plugins.render.liveportrait.layers import DownBlock2d, ResBlock3d, SameBlock2d
from talkingface.plugins.render.liveportrait.model_config import AppearanceConfig

__all__ = ["AppearanceFeatureExtractor"]


class AppearanceFeatureExtractor(nn.Module):
    """2D conv encoder, a reshape of its channels into (C, D), then 3D residual blocks.

    Shape: image [B, 3, S, S] in 0..1 -> volume [B, C, D, S/4, S/4] ([B, 32, 16, 64, 64] at the
    published size).
    """

    def __init__(self, config: AppearanceConfig):
        super().__init__()
        self.config = config
        widths = [
            min(config.max_features, config.block_expansion * 2**i)
            for i in range(config.num_down_blocks + 1)
        ]
        self.first = SameBlock2d(config.image_channel, config.block_expansion)
        self.down_blocks = nn.ModuleList(
            DownBlock2d(cin, cout) for cin, cout in zip(widths[:-1], widths[1:], strict=True)
        )
        self.second = nn.Conv2d(widths[-1], config.max_features, kernel_size=1)
        # Upstream names these blocks "3dr0", "3dr1", ... inside a Sequential.
        self.resblocks_3d = nn.Sequential()
        for i in range(config.num_resblocks):
            self.resblocks_3d.add_module(f"3dr{i}", ResBlock3d(config.reshape_channel))

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        out = self.first(image)
        for block in self.down_blocks:
            out = block(out)
        out = self.second(out)
        batch, _, height, width = out.shape
        volume = out.view(
            batch, self.config.reshape_channel, self.config.reshape_depth, height, width
        )
        return self.resblocks_3d(volume)
