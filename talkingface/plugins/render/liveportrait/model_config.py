"""Sizes of the five LivePortrait networks: the published full size (`FULL_CONFIG`, the shapes of
upstream's `src/config/models.yaml`) and a small one of the same classes for fast tests
(`SMALL_CONFIG`).

Sizes that must agree between networks (checked by `LivePortraitConfig.__post_init__`): F's
volume is `reshape_channel` x `reshape_depth` x (input / 2**num_down_blocks)**2, W's dense
motion network works at F's depth, and G's input channels are W's output channels.
"""

from __future__ import annotations

from dataclasses import dataclass, field

__all__ = [
    "FULL_CONFIG",
    "SMALL_CONFIG",
    "AppearanceConfig",
    "DenseMotionConfig",
    "LivePortraitConfig",
    "MlpConfig",
    "MotionExtractorConfig",
    "RetargetingConfig",
    "SpadeDecoderConfig",
    "WarpingConfig",
]


@dataclass(frozen=True)
class AppearanceConfig:
    """Appearance feature extractor F: image -> feature volume.

    Attributes:
        image_channel: input image channels (RGB: 3).
        block_expansion: channels of the first 2D block; each down block doubles them.
        num_down_blocks: 2D down blocks (each halves the resolution).
        max_features: channel cap of the 2D blocks and channels before the 3D reshape; must
            equal reshape_channel * reshape_depth.
        reshape_channel: channels C of the volume.
        reshape_depth: depth D of the volume.
        num_resblocks: 3D residual blocks applied to the volume.
    """

    image_channel: int = 3
    block_expansion: int = 64
    num_down_blocks: int = 2
    max_features: int = 512
    reshape_channel: int = 32
    reshape_depth: int = 16
    num_resblocks: int = 6


@dataclass(frozen=True)
class MotionExtractorConfig:
    """Motion extractor M: a ConvNeXt-V2 backbone and heads for keypoints, pose, t, exp, scale.

    Attributes:
        in_channels: input image channels.
        depths: blocks per stage (ConvNeXt-V2 tiny: 3, 3, 9, 3).
        dims: channels per stage (tiny: 96, 192, 384, 768).
        num_kp: implicit keypoints K (kp and exp heads output 3K values).
        num_bins: bins of each pose-angle head (66 bins of 3 degrees).
    """

    in_channels: int = 3
    depths: tuple[int, ...] = (3, 3, 9, 3)
    dims: tuple[int, ...] = (96, 192, 384, 768)
    num_kp: int = 21
    num_bins: int = 66


@dataclass(frozen=True)
class DenseMotionConfig:
    """The dense motion network inside W (a 3D hourglass over keypoint heatmaps).

    Attributes:
        block_expansion: channels of the hourglass's first level.
        max_features: channel cap of the hourglass.
        num_blocks: hourglass levels (each halves height and width, not depth).
        reshape_depth: depth of the volume (F's reshape_depth); sizes the occlusion conv.
        compress: channels the feature volume is compressed to before warping per keypoint.
    """

    block_expansion: int = 32
    max_features: int = 1024
    num_blocks: int = 5
    reshape_depth: int = 16
    compress: int = 4


@dataclass(frozen=True)
class WarpingConfig:
    """Warping module W: dense motion + occlusion, 3D warp, and the 2D projection for G.

    Attributes:
        num_kp: implicit keypoints K.
        block_expansion, num_down_blocks: output channels are block_expansion * 2**num_down_blocks.
        max_features: channels of the flattened warped volume (C * D).
        reshape_channel: channels C of the feature volume.
        estimate_occlusion_map: predict the occlusion map that multiplies the output.
        dense_motion: the dense motion network's sizes.
    """

    num_kp: int = 21
    block_expansion: int = 64
    max_features: int = 512
    num_down_blocks: int = 2
    reshape_channel: int = 32
    estimate_occlusion_map: bool = True
    dense_motion: DenseMotionConfig = field(default_factory=DenseMotionConfig)

    @property
    def out_channels(self) -> int:
        return self.block_expansion * 2**self.num_down_blocks


@dataclass(frozen=True)
class SpadeDecoderConfig:
    """SPADE decoder G: warped 2D features -> RGB image at twice the upsampled size.

    Attributes:
        upscale: final pixel-shuffle factor (2: 256 -> 512); 1 uses a plain conv.
        block_expansion, num_down_blocks, max_features: the input channels are
            min(max_features, block_expansion * 2**num_down_blocks) (W's out_channels).
        out_channels: channels of the last SPADE block.
        num_middle_blocks: SPADE residual blocks at the input resolution.
        spade_hidden: hidden channels of each SPADE modulation branch.
    """

    upscale: int = 2
    block_expansion: int = 64
    max_features: int = 512
    num_down_blocks: int = 2
    out_channels: int = 64
    num_middle_blocks: int = 6
    spade_hidden: int = 128

    @property
    def in_channels(self) -> int:
        return min(self.max_features, self.block_expansion * 2**self.num_down_blocks)


@dataclass(frozen=True)
class MlpConfig:
    """One stitching/retargeting MLP: Linear + ReLU per hidden size, then a Linear out."""

    input_size: int
    hidden_sizes: tuple[int, ...]
    output_size: int


@dataclass(frozen=True)
class RetargetingConfig:
    """The three MLPs of the retargeting file (inputs: 3K keypoint values + extras).

    Attributes:
        stitching: [3K source, 3K driving] -> 3K expression delta + (tx, ty).
        lip: [3K source, 2 lip ratios] -> 3K delta.
        eye: [3K source, 3 eye ratios] -> 3K delta.
    """

    stitching: MlpConfig = field(default_factory=lambda: MlpConfig(126, (128, 128, 64), 65))
    lip: MlpConfig = field(default_factory=lambda: MlpConfig(65, (128, 128, 64), 63))
    eye: MlpConfig = field(default_factory=lambda: MlpConfig(66, (256, 256, 128, 128, 64), 63))


@dataclass(frozen=True)
class LivePortraitConfig:
    """Every size of the five networks, and the input size they expect.

    Attributes:
        input_size: side of the square RGB input of F and M (256 for the published weights).
        appearance, motion, warping, decoder, retargeting: per-network sizes.
    """

    input_size: int = 256
    appearance: AppearanceConfig = field(default_factory=AppearanceConfig)
    motion: MotionExtractorConfig = field(default_factory=MotionExtractorConfig)
    warping: WarpingConfig = field(default_factory=WarpingConfig)
    decoder: SpadeDecoderConfig = field(default_factory=SpadeDecoderConfig)
    retargeting: RetargetingConfig = field(default_factory=RetargetingConfig)

    def __post_init__(self):
        app, warp, dec = self.appearance, self.warping, self.decoder
        k3 = 3 * self.motion.num_kp
        checks = {
            "appearance.max_features == reshape_channel * reshape_depth": app.max_features
            == app.reshape_channel * app.reshape_depth,
            "warping.reshape_channel == appearance.reshape_channel": warp.reshape_channel
            == app.reshape_channel,
            "warping.max_features == appearance.max_features": warp.max_features
            == app.max_features,
            "warping.dense_motion.reshape_depth == appearance.reshape_depth": (
                warp.dense_motion.reshape_depth == app.reshape_depth
            ),
            "warping.num_kp == motion.num_kp": warp.num_kp == self.motion.num_kp,
            "decoder.in_channels == warping.out_channels": dec.in_channels == warp.out_channels,
            "input_size divisible by 2**appearance.num_down_blocks": self.input_size
            % 2**app.num_down_blocks
            == 0,
            "retargeting sizes match 3 * num_kp": (
                self.retargeting.stitching.input_size == 2 * k3
                and self.retargeting.stitching.output_size == k3 + 2
                and self.retargeting.lip.input_size == k3 + 2
                and self.retargeting.eye.input_size == k3 + 3
                and self.retargeting.lip.output_size == k3
                and self.retargeting.eye.output_size == k3
            ),
        }
        broken = [name for name, ok in checks.items() if not ok]
        if broken:
            raise ValueError(f"inconsistent LivePortrait config: {'; '.join(broken)}")

    @property
    def volume_shape(self) -> tuple[int, int, int, int]:
        """[C, D, H, W] of F's feature volume."""
        side = self.input_size // 2**self.appearance.num_down_blocks
        return (self.appearance.reshape_channel, self.appearance.reshape_depth, side, side)

    @property
    def output_size(self) -> int:
        """Side of G's square output image."""
        # Two nearest 2x upsamplings, then a 2x pixel shuffle when upscale > 1.
        return self.volume_shape[2] * 4 * (2 if self.decoder.upscale > 1 else 1)


FULL_CONFIG = LivePortraitConfig()
"""The published LivePortrait (human) networks: 256² input, [32, 16, 64, 64] volume, 512² output."""

SMALL_CONFIG = LivePortraitConfig(
    input_size=64,
    appearance=AppearanceConfig(
        block_expansion=8, max_features=32, reshape_channel=4, reshape_depth=8, num_resblocks=1
    ),
    motion=MotionExtractorConfig(depths=(1, 1, 1, 1), dims=(8, 16, 24, 32)),
    warping=WarpingConfig(
        block_expansion=8,
        max_features=32,
        reshape_channel=4,
        dense_motion=DenseMotionConfig(
            block_expansion=4, max_features=16, num_blocks=2, reshape_depth=8, compress=2
        ),
    ),
    decoder=SpadeDecoderConfig(
        block_expansion=8, max_features=32, out_channels=8, num_middle_blocks=2, spade_hidden=8
    ),
    retargeting=RetargetingConfig(
        stitching=MlpConfig(126, (16, 8), 65),
        lip=MlpConfig(65, (16, 8), 63),
        eye=MlpConfig(66, (16, 8), 63),
    ),
)
"""The same classes at toy size for tests: 64² input, [4, 8, 16, 16] volume, 128² output."""
