"""SPADE decoder G of LivePortrait: the warped 2D features -> the 512² output image. Each SPADE
norm + modulation + activation runs through `talkingface.kernels.spade_modulate`; the
spectral-normalised convs keep the checkpoint's `weight_orig`, `weight_u`, `weight_v` and fold
them into one weight when loaded. State-dict names as in `base_models/spade_generator.pth`."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from talkingface.kernels import spade_modulate
from talkingface.plugins.render.liveportrait.model_config import SpadeDecoderConfig

__all__ = ["SpadeDecoder", "SpectralNormConv2d", "spectral_sigma"]

LEAKY_SLOPE = 0.2


def spectral_sigma(weight_orig: torch.Tensor, u: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
    """The spectral-norm estimate u · (W v) of `weight_orig` reshaped to [out, -1], as PyTorch's
    `spectral_norm` computes it in eval mode (no power iteration: u and v as stored)."""
    return torch.dot(u, torch.mv(weight_orig.reshape(weight_orig.shape[0], -1), v))


class SpectralNormConv2d(nn.Module):
    """A conv whose weight is `weight_orig / sigma(weight_u, weight_v)` (eval-mode spectral norm).

    The quotient is computed once (when built and whenever a state dict is loaded) and kept in a
    non-persistent buffer, so a forward is a plain conv.
    """

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int, bias: bool = True):
        super().__init__()
        conv = nn.Conv2d(in_channels, out_channels, kernel_size, bias=bias)
        self.padding = kernel_size // 2
        self.weight_orig = nn.Parameter(conv.weight.detach().clone())
        self.bias = nn.Parameter(conv.bias.detach().clone()) if bias else None
        self.register_buffer("weight_u", torch.empty(out_channels))
        self.register_buffer("weight_v", torch.empty(conv.weight[0].numel()))
        self.register_buffer("weight", torch.empty_like(self.weight_orig), persistent=False)
        if not self.weight_orig.is_meta:  # on meta (before loading) there is nothing to fold
            self.power_iteration(steps=1, restart=True)
        self.register_load_state_dict_post_hook(lambda module, _keys: module.fold())

    @torch.no_grad()
    def fold(self) -> None:
        """Recompute `weight` from `weight_orig`, `weight_u` and `weight_v`."""
        sigma = spectral_sigma(self.weight_orig, self.weight_u, self.weight_v)
        self.weight = self.weight_orig / sigma

    @torch.no_grad()
    def power_iteration(self, steps: int = 3, restart: bool = False) -> None:
        """Move u, v towards the top singular vectors (what training does), then refold; for
        random checkpoints whose sigma should be realistic. `restart` starts from random u."""
        matrix = self.weight_orig.reshape(self.weight_orig.shape[0], -1)
        u, v = self.weight_u, self.weight_v
        if restart:
            u = F.normalize(torch.randn_like(u), dim=0, eps=1e-12)
        for _ in range(steps):
            v = F.normalize(torch.mv(matrix.t(), u), dim=0, eps=1e-12)
            u = F.normalize(torch.mv(matrix, v), dim=0, eps=1e-12)
        self.weight_u.copy_(u)
        self.weight_v.copy_(v)
        self.fold()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.conv2d(x, self.weight, self.bias, padding=self.padding)


class Spade(nn.Module):
    """The modulation branch: gamma and beta maps from the (resized) label features.

    Shape: x [B, C, H, W], label [B, L, h, w] -> x's shape.
    """

    def __init__(self, channels: int, label_channels: int, hidden: int):
        super().__init__()
        self.mlp_shared = nn.Sequential(
            nn.Conv2d(label_channels, hidden, kernel_size=3, padding=1), nn.ReLU()
        )
        self.mlp_gamma = nn.Conv2d(hidden, channels, kernel_size=3, padding=1)
        self.mlp_beta = nn.Conv2d(hidden, channels, kernel_size=3, padding=1)

    def forward(
        self, x: torch.Tensor, label: torch.Tensor, negative_slope: float, backend: str | None
    ) -> torch.Tensor:
        """leaky_relu(instance_norm(x) * (1 + gamma) + beta, negative_slope), fused."""
        label = F.interpolate(label, size=x.shape[2:], mode="nearest")
        hidden = self.mlp_shared(label)
        gamma, beta = self.mlp_gamma(hidden), self.mlp_beta(hidden)
        return spade_modulate(x, gamma, beta, negative_slope=negative_slope, backend=backend)


class SpadeResBlock(nn.Module):
    """SPADE residual block: two (SPADE -> leaky ReLU 0.2 -> spectral conv) steps plus a
    shortcut, learned (SPADE without activation -> 1x1 spectral conv) when widths differ."""

    def __init__(self, fin: int, fout: int, label_channels: int, hidden: int):
        super().__init__()
        fmiddle = min(fin, fout)
        self.learned_shortcut = fin != fout
        self.conv_0 = SpectralNormConv2d(fin, fmiddle, 3)
        self.conv_1 = SpectralNormConv2d(fmiddle, fout, 3)
        self.norm_0 = Spade(fin, label_channels, hidden)
        self.norm_1 = Spade(fmiddle, label_channels, hidden)
        if self.learned_shortcut:
            self.conv_s = SpectralNormConv2d(fin, fout, 1, bias=False)
            self.norm_s = Spade(fin, label_channels, hidden)

    def forward(self, x: torch.Tensor, label: torch.Tensor, backend: str | None) -> torch.Tensor:
        shortcut = x
        if self.learned_shortcut:
            # negative_slope=1.0: the shortcut's modulation has no activation.
            shortcut = self.conv_s(self.norm_s(x, label, 1.0, backend))
        dx = self.conv_0(self.norm_0(x, label, LEAKY_SLOPE, backend))
        dx = self.conv_1(self.norm_1(dx, label, LEAKY_SLOPE, backend))
        return shortcut + dx


class SpadeDecoder(nn.Module):
    """G: conv to twice the input width, middle SPADE blocks, two (2x nearest upsample -> SPADE
    block) steps, then conv + pixel shuffle and a sigmoid. The input features also serve as
    the SPADE label map at every scale.

    Shape: features [B, Cin, H, W] -> image [B, 3, 8H, 8W] in 0..1 (4H without upscale).
    """

    def __init__(self, config: SpadeDecoderConfig, kernel_backend: str | None = None):
        super().__init__()
        self.config = config
        self.kernel_backend = kernel_backend
        cin, hidden = config.in_channels, config.spade_hidden
        self.fc = nn.Conv2d(cin, 2 * cin, kernel_size=3, padding=1)
        for i in range(config.num_middle_blocks):
            self.add_module(f"G_middle_{i}", SpadeResBlock(2 * cin, 2 * cin, cin, hidden))
        self.up_0 = SpadeResBlock(2 * cin, cin, cin, hidden)
        self.up_1 = SpadeResBlock(cin, config.out_channels, cin, hidden)
        if config.upscale > 1:
            self.conv_img = nn.Sequential(
                nn.Conv2d(config.out_channels, 3 * 4, kernel_size=3, padding=1),
                nn.PixelShuffle(2),
            )
        else:
            self.conv_img = nn.Conv2d(config.out_channels, 3, kernel_size=3, padding=1)

    def set_kernel_backend(self, backend: str | None) -> None:
        """Choose the spade_modulate backend ("auto", "torch", "triton"; None: process default)."""
        self.kernel_backend = backend

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        backend = self.kernel_backend
        x = self.fc(features)
        for i in range(self.config.num_middle_blocks):
            x = getattr(self, f"G_middle_{i}")(x, features, backend)
        x = self.up_0(F.interpolate(x, scale_factor=2.0), features, backend)
        x = self.up_1(F.interpolate(x, scale_factor=2.0), features, backend)
        return torch.sigmoid(self.conv_img(F.leaky_relu(x, LEAKY_SLOPE)))
