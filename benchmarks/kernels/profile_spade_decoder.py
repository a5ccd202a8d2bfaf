"""Profile a LivePortrait-shaped SPADE decoder on CPU to find its fusable hotspot: the share of
time in SPADE's norm + modulation + activation against the convolutions.

The network follows LivePortrait's SPADEDecoder (upscale 2, block_expansion 64, max_features 512,
num_down_blocks 2): a 256-channel feature map -> fc conv to 512 -> six 512-channel
SPADEResnetBlocks -> upsample, block 512->256 -> upsample, block 256->64 -> conv to 12 channels
+ pixel shuffle -> RGB at 8x the feature size (64x64 features -> 512x512 frames). Every SPADE
predicts gamma/beta with a 128-channel hidden conv from the (resized) input feature. Weights are
random; spectral norm is left out (at inference it only rescales weights).

    python benchmarks/kernels/profile_spade_decoder.py --feature-size 16
"""

import argparse
import datetime

import torch
import torch.nn.functional as F
from _common import device_name
from torch import nn
from torch.profiler import ProfilerActivity, profile, record_function

NORM_MODULATE_ACT = "norm+modulate+act"
GAMMA_BETA_CONVS = "gamma/beta convs"
BLOCK_CONVS = "resblock convs"


class SPADE(nn.Module):
    """Param-free instance norm modulated by gamma/beta predicted from a segmentation map."""

    def __init__(self, channels: int, label_channels: int, hidden: int = 128):
        super().__init__()
        self.shared = nn.Conv2d(label_channels, hidden, 3, padding=1)
        self.gamma = nn.Conv2d(hidden, channels, 3, padding=1)
        self.beta = nn.Conv2d(hidden, channels, 3, padding=1)

    def forward(self, x: torch.Tensor, seg: torch.Tensor, negative_slope: float) -> torch.Tensor:
        with record_function(GAMMA_BETA_CONVS):
            seg = F.interpolate(seg, size=x.shape[2:], mode="nearest")
            hidden = F.relu(self.shared(seg))
            gamma, beta = self.gamma(hidden), self.beta(hidden)
        # The candidate for fusion: what talkingface.kernels.spade_modulate computes.
        with record_function(NORM_MODULATE_ACT):
            out = F.instance_norm(x) * (1 + gamma) + beta
            return out if negative_slope == 1.0 else F.leaky_relu(out, negative_slope)


class SPADEResnetBlock(nn.Module):
    def __init__(self, fin: int, fout: int, label_channels: int):
        super().__init__()
        middle = min(fin, fout)
        self.norm_0 = SPADE(fin, label_channels)
        self.conv_0 = nn.Conv2d(fin, middle, 3, padding=1)
        self.norm_1 = SPADE(middle, label_channels)
        self.conv_1 = nn.Conv2d(middle, fout, 3, padding=1)
        self.learned_shortcut = fin != fout
        if self.learned_shortcut:
            self.norm_s = SPADE(fin, label_channels)
            self.conv_s = nn.Conv2d(fin, fout, 1, bias=False)

    def forward(self, x: torch.Tensor, seg: torch.Tensor) -> torch.Tensor:
        shortcut = x
        if self.learned_shortcut:
            normed = self.norm_s(x, seg, negative_slope=1.0)  # no activation on the shortcut
            with record_function(BLOCK_CONVS):
                shortcut = self.conv_s(normed)
        dx = self.norm_0(x, seg, negative_slope=0.2)
        with record_function(BLOCK_CONVS):
            dx = self.conv_0(dx)
        dx = self.norm_1(dx, seg, negative_slope=0.2)
        with record_function(BLOCK_CONVS):
            dx = self.conv_1(dx)
        return shortcut + dx


class SPADEDecoder(nn.Module):
    def __init__(self, in_channels: int = 256, out_channels: int = 64):
        super().__init__()
        width = 2 * in_channels
        self.fc = nn.Conv2d(in_channels, width, 3, padding=1)
        self.middle = nn.ModuleList(SPADEResnetBlock(width, width, in_channels) for _ in range(6))
        self.up_0 = SPADEResnetBlock(width, in_channels, in_channels)
        self.up_1 = SPADEResnetBlock(in_channels, out_channels, in_channels)
        self.to_rgb = nn.Sequential(
            nn.Conv2d(out_channels, 3 * 4, 3, padding=1), nn.PixelShuffle(2)
        )

    def forward(self, feature: torch.Tensor) -> torch.Tensor:
        x = self.fc(feature)
        for block in self.middle:
            x = block(x, feature)
        x = self.up_0(F.interpolate(x, scale_factor=2.0), feature)
        x = self.up_1(F.interpolate(x, scale_factor=2.0), feature)
        return torch.sigmoid(self.to_rgb(F.leaky_relu(x, 0.2)))


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument(
        "--feature-size",
        type=int,
        default=16,
        help="H = W of the 256-channel input (LivePortrait: 64; output is 8x)",
    )
    p.add_argument("--batch", type=int, default=1)
    p.add_argument("--iters", type=int, default=3)
    p.add_argument("--threads", type=int, help="torch CPU threads (default: torch's choice)")
    args = p.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    decoder = SPADEDecoder().eval()
    feature = torch.randn(args.batch, 256, args.feature_size, args.feature_size)
    with torch.no_grad():
        decoder(feature)  # warm-up: allocator and oneDNN primitive caches
        with profile(activities=[ProfilerActivity.CPU]) as prof:
            for _ in range(args.iters):
                with record_function("decoder"):
                    out = decoder(feature)
    totals = {e.key: e.cpu_time_total for e in prof.key_averages()}
    whole = totals["decoder"]
    shares = {
        label: totals.get(label, 0.0) / whole
        for label in (NORM_MODULATE_ACT, GAMMA_BETA_CONVS, BLOCK_CONVS)
    }
    other = 1.0 - sum(shares.values())
    print(
        f"# {datetime.date.today()}, {device_name(torch.device('cpu'))}, torch {torch.__version__}"
    )
    print(
        f"# input {list(feature.shape)} -> output {list(out.shape)}, "
        f"{whole / args.iters / 1e3:.1f} ms per decode"
    )
    for label, share in shares.items():
        print(f"{label:20} {100 * share:5.1f} %")
    print(f"{'other':20} {100 * other:5.1f} %  (fc, upsampling, to_rgb, residual adds)")
    conv = shares[GAMMA_BETA_CONVS] + shares[BLOCK_CONVS]
    print(
        f"norm+modulate+act vs all convs: {100 * shares[NORM_MODULATE_ACT]:.1f} % vs "
        f"{100 * conv:.1f} %"
    )
    print(prof.key_averages().table(sort_by="self_cpu_time_total", row_limit=12))


if __name__ == "__main__":
    main()
