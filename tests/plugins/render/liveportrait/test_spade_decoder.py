"""The decoder's spectral-norm convs: the folded weight is what PyTorch's own `spectral_norm`
uses in eval mode, and loading a state dict refolds it."""

from __future__ import annotations

import torch
from torch import nn

from talkingface.plugins.render.liveportrait.spade_decoder import SpectralNormConv2d


def _torch_spectral_conv(state: dict, kernel_size: int, bias: bool) -> nn.Module:
    out_channels, in_channels = state["weight_orig"].shape[:2]
    conv = nn.utils.spectral_norm(
        nn.Conv2d(in_channels, out_channels, kernel_size, padding=kernel_size // 2, bias=bias)
    )
    conv.load_state_dict(state)
    return conv.eval()


def test_folded_weight_matches_torch_spectral_norm_in_eval_mode():
    torch.manual_seed(0)
    for kernel_size, bias in ((3, True), (1, False)):
        ours = SpectralNormConv2d(6, 5, kernel_size, bias=bias)
        ours.power_iteration(steps=2)
        state = ours.state_dict()
        assert set(state) == {"weight_orig", "weight_u", "weight_v"} | ({"bias"} if bias else set())
        reference = _torch_spectral_conv(state, kernel_size, bias)
        x = torch.randn(2, 6, 7, 9)
        with torch.no_grad():
            torch.testing.assert_close(ours(x), reference(x), atol=1e-6, rtol=1e-6)
            # Eval mode never updates u and v, so repeated calls agree too.
            torch.testing.assert_close(ours(x), reference(x), atol=1e-6, rtol=1e-6)


def test_loading_a_state_dict_refolds_the_weight():
    torch.manual_seed(1)
    source, target = SpectralNormConv2d(4, 3, 3), SpectralNormConv2d(4, 3, 3)
    source.weight_orig.data.mul_(3.0)
    source.fold()
    target.load_state_dict(source.state_dict())
    torch.testing.assert_close(target.weight, source.weight)
    x = torch.randn(1, 4, 5, 5)
    with torch.no_grad():
        torch.testing.assert_close(target(x), source(x))
