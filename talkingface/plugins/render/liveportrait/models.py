"""The LivePortrait model API: the five networks loaded together, with the methods upstream's
`LivePortraitWrapper` names (`extract_feature_3d`, `get_kp_info`, `transform_keypoint`,
`warp_decode`, `retarget_lip`, `retarget_eye`, `stitch`, `stitching`), so results can be
compared with upstream's on the same weights. No cropping, I/O or driving logic lives here.
"""

from __future__ import annotations

from pathlib import Path

import torch
from torch import nn

from talkingface.plugins.render.liveportrait.appearance import AppearanceFeatureExtractor
from talkingface.plugins.render.liveportrait.checkpoints import (
    BASE_MODEL_FILES,
    RETARGETING_FILE,
    RETARGETING_PARTS,
    check_state_dict,
    checkpoint_path,
    read_checkpoint,
    read_retargeting_checkpoint,
    write_checkpoint,
)
from talkingface.plugins.render.liveportrait.keypoints import (
    pose_bins_to_degrees,
    rotation_matrix,
    transform_keypoints,
)
from talkingface.plugins.render.liveportrait.model_config import FULL_CONFIG, LivePortraitConfig
from talkingface.plugins.render.liveportrait.motion_extractor import (
    GlobalResponseNorm,
    MotionExtractor,
)
from talkingface.plugins.render.liveportrait.retargeting import RetargetingMlp
from talkingface.plugins.render.liveportrait.spade_decoder import SpadeDecoder, SpectralNormConv2d
from talkingface.plugins.render.liveportrait.warping import WarpingNetwork

__all__ = ["LivePortraitModels", "load_models"]

FORMATS = ("pth", "safetensors")
DTYPES = (torch.float32, torch.float16, torch.bfloat16)


class LivePortraitModels(nn.Module):
    """F, M, W, G and the three retargeting MLPs, in eval mode, with upstream's wrapper API.

    Inputs are cast to the models' dtype; outputs are float32 (as upstream's wrapper returns
    them). Every network method runs without autograd. Build with `load_models` (weights from
    disk) or `from_config` (random weights, for tests and benchmarks).

    Attributes:
        config: the sizes the networks were built with.
        appearance_feature_extractor, motion_extractor, warping_module, spade_generator: F, M,
            W, G.
        stitching_mlp, lip_mlp, eye_mlp: the retargeting MLPs (upstream's `retarget_shoulder`,
            `retarget_mouth`, `retarget_eye`).
    """

    def __init__(
        self,
        config: LivePortraitConfig = FULL_CONFIG,
        kernel_backend: str | None = None,
        compile: bool = False,
    ):
        super().__init__()
        self.config = config
        self.appearance_feature_extractor = AppearanceFeatureExtractor(config.appearance)
        self.motion_extractor = MotionExtractor(config.motion)
        self.warping_module = WarpingNetwork(config.warping, kernel_backend)
        self.spade_generator = SpadeDecoder(config.decoder, kernel_backend)
        self.stitching_mlp = RetargetingMlp(config.retargeting.stitching)
        self.lip_mlp = RetargetingMlp(config.retargeting.lip)
        self.eye_mlp = RetargetingMlp(config.retargeting.eye)
        self.compiled = compile
        self.eval()
        self.requires_grad_(False)

    # -- construction -------------------------------------------------------------------------

    @classmethod
    def from_config(
        cls,
        config: LivePortraitConfig = FULL_CONFIG,
        seed: int = 0,
        *,
        device: torch.device | str = "cpu",
        dtype: torch.dtype = torch.float32,
        kernel_backend: str | None = None,
    ) -> LivePortraitModels:
        """Networks of `config` with random weights, identical for the same seed.

        Beyond PyTorch's default init, batch-norm statistics and affines, GRN parameters and
        spectral-norm vectors get non-trivial values, so a random checkpoint exercises every
        stored tensor (tests, parity checks, benchmarks).
        """
        _check_precision(device, dtype)
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            models = cls(config, kernel_backend)
            models._randomize_stored_statistics()
        return models.to(device=device, dtype=dtype)

    @torch.no_grad()
    def _randomize_stored_statistics(self) -> None:
        for module in self.modules():
            if isinstance(module, nn.modules.batchnorm._BatchNorm):
                module.running_mean.normal_(0.0, 0.1)
                module.running_var.uniform_(0.5, 1.5)
                module.weight.uniform_(0.8, 1.2)
                module.bias.normal_(0.0, 0.1)
                module.num_batches_tracked.fill_(1000)
            elif isinstance(module, GlobalResponseNorm):
                module.gamma.normal_(0.0, 0.1)
                module.beta.normal_(0.0, 0.1)
            elif isinstance(module, SpectralNormConv2d):
                module.power_iteration()

    @classmethod
    def load(
        cls,
        directory: Path | str,
        config: LivePortraitConfig = FULL_CONFIG,
        *,
        device: torch.device | str = "cpu",
        dtype: torch.dtype = torch.float32,
        kernel_backend: str | None = None,
        compile: bool = False,
    ) -> LivePortraitModels:
        """Load a weights directory in the published layout (see `checkpoints`).

        The networks are built on the meta device and take the checkpoint's tensors directly
        (no random init, one copy in memory), after every file's keys and shapes are checked.
        """
        _check_precision(device, dtype)
        directory = Path(directory)
        paths = {name: checkpoint_path(directory, stem) for name, stem in BASE_MODEL_FILES.items()}
        retargeting_path = checkpoint_path(directory, RETARGETING_FILE)
        with torch.device("meta"):
            models = cls(config, kernel_backend, compile)
        for name, path in paths.items():
            module = getattr(models, name)
            state = read_checkpoint(path)
            check_state_dict(path, _shapes(module), state)
            module.load_state_dict(state, strict=True, assign=True)
        parts = read_retargeting_checkpoint(retargeting_path)
        for ours, file_name in RETARGETING_PARTS.items():
            module = getattr(models, f"{ours}_mlp")
            check_state_dict(retargeting_path, _shapes(module), parts[ours], f"{file_name}.")
            module.load_state_dict(parts[ours], strict=True, assign=True)
        models.eval()
        models.requires_grad_(False)
        return models.to(device=device, dtype=dtype)

    def network_state_dicts(self) -> dict[str, dict]:
        """File stem -> what that file holds: a state dict per base model, and for the
        retargeting file a dict of the three sub-dicts (keys as upstream saved them)."""
        files: dict[str, dict] = {
            stem: getattr(self, name).state_dict() for name, stem in BASE_MODEL_FILES.items()
        }
        files[RETARGETING_FILE] = {
            file_name: getattr(self, f"{ours}_mlp").state_dict()
            for ours, file_name in RETARGETING_PARTS.items()
        }
        return files

    def save(self, directory: Path | str, format: str = "pth") -> Path:
        """Write every network in the published layout under `directory` (`.pth` as upstream
        saved them, `module.` prefixes in the retargeting file included, or `.safetensors`).
        Returns the directory."""
        if format not in FORMATS:
            raise ValueError(f"format must be one of {', '.join(FORMATS)}, got {format!r}")
        directory = Path(directory)
        for stem, content in self.network_state_dicts().items():
            if stem == RETARGETING_FILE and format == "pth":
                content = {
                    part: {f"module.{k}": v for k, v in state.items()}
                    for part, state in content.items()
                }
            write_checkpoint(directory / f"{stem}.{format}", content)
        return directory

    # -- settings -------------------------------------------------------------------------------

    @property
    def device(self) -> torch.device:
        return self.motion_extractor.detector.fc_kp.weight.device

    @property
    def dtype(self) -> torch.dtype:
        return self.motion_extractor.detector.fc_kp.weight.dtype

    @property
    def kernel_backend(self) -> str | None:
        """The backend of the warp3d and spade_modulate kernels (None: the process default)."""
        return self.warping_module.kernel_backend

    def set_kernel_backend(self, backend: str | None) -> None:
        """Choose "auto", "torch" or "triton" for W's warps and G's SPADE modulations."""
        self.warping_module.set_kernel_backend(backend)
        self.spade_generator.set_kernel_backend(backend)

    @property
    def compiled(self) -> bool:
        """Whether W and G run through `torch.compile`."""
        return self._compiled

    @compiled.setter
    def compiled(self, value: bool) -> None:
        self._compiled = bool(value)
        # Plain attributes (not submodules), so the state dicts keep the published names.
        object.__setattr__(
            self, "_warp", torch.compile(self.warping_module) if value else self.warping_module
        )
        object.__setattr__(
            self, "_decode", torch.compile(self.spade_generator) if value else self.spade_generator
        )

    # -- upstream's wrapper API -----------------------------------------------------------------

    def _image(self, x: torch.Tensor) -> torch.Tensor:
        size = self.config.input_size
        if x.dim() != 4 or tuple(x.shape[1:]) != (3, size, size) or not x.is_floating_point():
            raise ValueError(
                f"expected a float image batch [B, 3, {size}, {size}] in 0..1, got "
                f"{x.dtype} {list(x.shape)}"
            )
        return x.to(device=self.device, dtype=self.dtype)

    def _keypoints(self, name: str, kp: torch.Tensor) -> torch.Tensor:
        num_kp = self.config.motion.num_kp
        if kp.dim() != 3 or tuple(kp.shape[1:]) != (num_kp, 3):
            raise ValueError(f"{name} must be [B, {num_kp}, 3], got {list(kp.shape)}")
        return kp.to(device=self.device, dtype=self.dtype)

    @torch.no_grad()
    def extract_feature_3d(self, x: torch.Tensor) -> torch.Tensor:
        """F: appearance feature volume of source crops.

        Shape: x [B, 3, 256, 256] in 0..1 -> [B, 32, 16, 64, 64] float32.
        """
        return self.appearance_feature_extractor(self._image(x)).float()

    @torch.no_grad()
    def get_kp_info(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        """M: implicit keypoint information of crops, all float32.

        Shape: x [B, 3, 256, 256] in 0..1 -> dict with pitch, yaw, roll [B, 1] (degrees),
        t [B, 3], exp [B, 21, 3], kp [B, 21, 3] (canonical keypoints), scale [B, 1].
        """
        raw = {k: v.float() for k, v in self.motion_extractor(self._image(x)).items()}
        batch = raw["kp"].shape[0]
        return {
            "pitch": pose_bins_to_degrees(raw["pitch"]),
            "yaw": pose_bins_to_degrees(raw["yaw"]),
            "roll": pose_bins_to_degrees(raw["roll"]),
            "t": raw["t"],
            "exp": raw["exp"].reshape(batch, -1, 3),
            "scale": raw["scale"],
            "kp": raw["kp"].reshape(batch, -1, 3),
        }

    @staticmethod
    def get_rotation_matrix(pitch, yaw, roll) -> torch.Tensor:
        """Rotation from degrees, right-multiplied (kp @ R). Shape: [B, 1] each -> [B, 3, 3]."""
        return rotation_matrix(pitch, yaw, roll)

    def transform_keypoint(self, kp_info: dict[str, torch.Tensor]) -> torch.Tensor:
        """Posed keypoints scale * (kp @ R + exp) + (tx, ty, 0) from a `get_kp_info` dict
        (angles in degrees, or raw pose-bin logits, which are converted).

        Shape: -> [B, 21, 3].
        """
        angles = [
            pose_bins_to_degrees(a) if a.shape[-1] == self.config.motion.num_bins else a
            for a in (kp_info["pitch"], kp_info["yaw"], kp_info["roll"])
        ]
        return transform_keypoints(
            kp_info["kp"], *angles, kp_info["exp"], kp_info["scale"], kp_info["t"]
        )

    @torch.no_grad()
    def warp_decode(
        self, feature_3d: torch.Tensor, kp_source: torch.Tensor, kp_driving: torch.Tensor
    ) -> dict[str, torch.Tensor | None]:
        """W then G: the source volume animated to the driving keypoints.

        Shape: feature_3d [B, 32, 16, 64, 64], kp_source and kp_driving [B, 21, 3] -> dict with
        out [B, 3, 512, 512] in 0..1, occlusion_map [B, 1, 64, 64], deformation
        [B, 16, 64, 64, 3], all float32.
        """
        volume_shape = self.config.volume_shape
        if feature_3d.dim() != 5 or tuple(feature_3d.shape[1:]) != volume_shape:
            raise ValueError(
                f"feature_3d must be [B, {', '.join(map(str, volume_shape))}] (from "
                f"extract_feature_3d), got {list(feature_3d.shape)}"
            )
        volume = feature_3d.to(device=self.device, dtype=self.dtype)
        kp_source = self._keypoints("kp_source", kp_source)
        kp_driving = self._keypoints("kp_driving", kp_driving)
        if self.compiled and self.device.type == "cuda":
            torch.compiler.cudagraph_mark_step_begin()
        warped = self._warp(volume, kp_source, kp_driving)
        image = self._decode(warped["out"])
        return {
            "out": image.float(),
            "occlusion_map": None
            if warped["occlusion_map"] is None
            else warped["occlusion_map"].float(),
            "deformation": warped["deformation"].float(),
        }

    def _mlp(self, mlp: RetargetingMlp, *parts: torch.Tensor) -> torch.Tensor:
        batch = parts[0].shape[0]
        features = torch.cat([p.reshape(batch, -1) for p in parts], dim=1)
        if features.shape[1] != mlp.config.input_size:
            raise ValueError(
                f"retargeting input has {features.shape[1]} values per item, the MLP takes "
                f"{mlp.config.input_size}"
            )
        return mlp(features.to(device=self.device, dtype=self.dtype)).float()

    @torch.no_grad()
    def retarget_lip(self, kp_source: torch.Tensor, lip_ratio: torch.Tensor) -> torch.Tensor:
        """Lip retargeting delta for the source keypoints.

        Shape: kp_source [B, 21, 3], lip_ratio [B, 2] ([source lip-open, target lip-open]) ->
        [B, 21, 3] (added to the driving keypoints).
        """
        kp_source = self._keypoints("kp_source", kp_source)
        return self._mlp(self.lip_mlp, kp_source, lip_ratio).reshape(kp_source.shape)

    @torch.no_grad()
    def retarget_eye(self, kp_source: torch.Tensor, eye_ratio: torch.Tensor) -> torch.Tensor:
        """Eye retargeting delta for the source keypoints.

        Shape: kp_source [B, 21, 3], eye_ratio [B, 3] ([source left-eye open, source right-eye
        open, target eye-open]) -> [B, 21, 3].
        """
        kp_source = self._keypoints("kp_source", kp_source)
        return self._mlp(self.eye_mlp, kp_source, eye_ratio).reshape(kp_source.shape)

    @torch.no_grad()
    def stitch(self, kp_source: torch.Tensor, kp_driving: torch.Tensor) -> torch.Tensor:
        """The stitching network's raw output.

        Shape: kp_source, kp_driving [B, 21, 3] -> [B, 65]: 63 keypoint deltas, then tx, ty.
        """
        kp_source = self._keypoints("kp_source", kp_source)
        kp_driving = self._keypoints("kp_driving", kp_driving)
        return self._mlp(self.stitching_mlp, kp_source, kp_driving)

    @torch.no_grad()
    def stitching(self, kp_source: torch.Tensor, kp_driving: torch.Tensor) -> torch.Tensor:
        """Driving keypoints corrected by the stitching network (so the animated crop pastes
        back without seams): each keypoint += its delta, and x, y += (tx, ty).

        Shape: kp_source, kp_driving [B, 21, 3] -> [B, 21, 3].
        """
        delta = self.stitch(kp_source, kp_driving)
        batch, num_kp, _ = kp_driving.shape
        shift = torch.cat([delta[:, 3 * num_kp :], torch.zeros_like(delta[:, :1])], dim=1)
        return (
            kp_driving.float()
            + delta[:, : 3 * num_kp].reshape(batch, num_kp, 3)
            + shift[:, None, :]
        )


def _check_precision(device: torch.device | str, dtype: torch.dtype) -> None:
    if dtype not in DTYPES:
        raise ValueError(
            f"dtype must be one of {', '.join(map(str, DTYPES))}, got {dtype} (the kernels "
            "support these three)"
        )
    if dtype != torch.float32 and torch.device(device).type != "cuda":
        raise ValueError(
            f"{dtype} runs on CUDA only (some 3D ops have no half-precision CPU kernel); use "
            "dtype=torch.float32 on the CPU"
        )


def _shapes(module: nn.Module) -> dict[str, torch.Size]:
    return {key: value.shape for key, value in module.state_dict().items()}


def load_models(
    directory: Path | str,
    device: torch.device | str = "cpu",
    dtype: torch.dtype = torch.float32,
    kernel_backend: str | None = None,
    compile: bool = False,
    config: LivePortraitConfig = FULL_CONFIG,
) -> LivePortraitModels:
    """Load LivePortrait's networks from `directory` (upstream's `pretrained_weights/liveportrait`,
    holding `base_models/` and `retargeting_models/`; `.pth` or `.safetensors` files).

    Args:
        directory: the weights directory.
        device, dtype: where and in which precision the networks run (fp16/bf16: GPU only).
        kernel_backend: "auto", "torch", "triton" or None (process default) for W's 3D warps
            and G's SPADE modulations.
        compile: run W and G through `torch.compile`.
        config: network sizes (the published ones by default; tests use smaller ones).

    Raises:
        LivePortraitWeightsError: missing directory or file, a file that is not a checkpoint,
            or a key/shape mismatch (naming the file, the key and both shapes).

    Example:
        >>> m = load_models("pretrained_weights/liveportrait")  # doctest: +SKIP
        >>> info = m.get_kp_info(crop)  # crop [1, 3, 256, 256] in 0..1  # doctest: +SKIP
    """
    return LivePortraitModels.load(
        directory,
        config,
        device=device,
        dtype=dtype,
        kernel_backend=kernel_backend,
        compile=compile,
    )
