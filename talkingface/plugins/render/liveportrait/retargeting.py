"""The stitching and retargeting MLPs of LivePortrait (`retargeting_models/
stitching_retargeting_module.pth`): stitching (source + driving keypoints -> expression delta
and tx, ty), lip (source keypoints + 2 lip ratios -> delta) and eye (+ 3 eye ratios -> delta)."""

from __future__ import annotations

import torch
from torch import nn

from talkingface.plugins.render.liveportrait.model_config import MlpConfig

__all__ = ["RetargetingMlp"]


class RetargetingMlp(nn.Module):
    """Linear + ReLU for each hidden size, then a Linear out; parameters under `mlp.{i}` as in
    the checkpoint (ReLUs take the odd indices).

    Shape: [B, input_size] -> [B, output_size].
    """

    def __init__(self, config: MlpConfig):
        super().__init__()
        self.config = config
        sizes = [config.input_size, *config.hidden_sizes]
        layers: list[nn.Module] = []
        for cin, cout in zip(sizes[:-1], sizes[1:], strict=True):
            layers += [nn.Linear(cin, cout), nn.ReLU()]
        layers.append(nn.Linear(sizes[-1], config.output_size))
        self.mlp = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.mlp(x)
