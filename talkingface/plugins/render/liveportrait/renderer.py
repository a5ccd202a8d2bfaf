"""The ``liveportrait`` renderer: LivePortrait's networks (our implementation, the user's
published weights) driven by our motion, on the portrait cropped by our own face analysis.

``prepare`` crops the portrait on upstream's convention (:func:`talkingface.face.eye_mouth_crop`),
encodes it once (appearance volume F, keypoints M) and measures its eye and lip ratios;
``render`` maps each motion frame to driving keypoints (:mod:`.mapping`: semantic motion, or a
``liveportrait-kp70`` latent), applies the lip and eye retargeting and the stitching network,
then warps and decodes (W + G) in batches of frames, and optionally pastes the 512 x 512 face
back into the whole portrait with upstream's feathered mask.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import torch

from talkingface.pipeline.contracts import (
    LIVEPORTRAIT_SPACE,
    Frames,
    Motion,
    Portrait,
    PreparedPortrait,
)
from talkingface.pipeline.errors import ConfigError, ContractError
from talkingface.pipeline.stages import Renderer
from talkingface.plugins.render.liveportrait.mapping import (
    EXPRESSION_DIRECTIONS,
    RATIO_NAMES,
    MappingGains,
    SourceMotion,
    latent_keypoints,
    rest_ratios,
    retarget_ratios,
    semantic_keypoints,
)

WEIGHTS_HINT = (
    "download LivePortrait's weights (pretrained_weights/liveportrait from "
    "https://huggingface.co/KwaiVGI/LivePortrait: base_models/ and retargeting_models/) and "
    "point at that folder with render.params.weights=DIR"
)
CROP_SIZE = 512
"""Side of the face crop and of the frames: upstream crops at 512 and its decoder outputs 512."""
_FEATHER = 16 / 512
"""Width of the paste-back mask's linear ramp along the crop border, in crop sides (upstream's
``mask_template.png`` ramps over its outer 16 of 512 pixels)."""
_NETWORK_SIZES = ("full", "small")
_DTYPES = {"float32": torch.float32, "float16": torch.float16, "bfloat16": torch.bfloat16}


@dataclass
class LivePortraitConfig:
    """Parameters of the ``liveportrait`` renderer (the device is the pipeline's ``device``).

    Attributes:
        weights: folder of LivePortrait's published weights, the one upstream downloads as
            ``pretrained_weights/liveportrait`` (it holds ``base_models/`` and
            ``retargeting_models/``). Nothing is downloaded.
        dtype: "float32", "float16" or "bfloat16" for the networks (half precision on a GPU).
        backend: kernel backend of the 3D warp and the SPADE modulation: "auto", "torch" or
            "triton" (None: the process default, ``kernels.backend``).
        compile: ``torch.compile`` the warp and decode networks (GPU; slow first frames).
        batch_frames: frames warped and decoded together.
        networks: network sizes: "full", the published ones; "small", the same networks at
            toy size (random test checkpoints, e.g. ``LivePortraitModels.save``).
        stitching: apply the stitching network (keeps the face's border on the portrait's
            shoulders, as upstream does by default).
        paste_back: output the whole portrait with the animated face composited in place
            (upstream's feathered square mask) instead of the 512 x 512 face crop.
        paste_back_max_side: with ``paste_back``, portraits whose longer side is above this
            are scaled down to it; an odd width or height loses its last column or row.
        head_rotation_gain: multiplies yaw, pitch and roll.
        expression_gain: multiplies every expression coefficient.
        lip_open_ratio: inner-lip gap / mouth width added at ``jaw_open = 1``.
    """

    weights: str | None = None
    dtype: str = "float32"
    backend: str | None = None
    compile: bool = False
    batch_frames: int = 8
    networks: str = "full"
    stitching: bool = True
    paste_back: bool = False
    paste_back_max_side: int = 1920
    head_rotation_gain: float = 1.0
    expression_gain: float = 1.0
    lip_open_ratio: float = 0.6


class LivePortraitRenderer(Renderer):
    """LivePortrait's warping renderer, driven by semantic motion or its own keypoint latent.

    Needs the user's copy of the published weights (``render.params.weights=DIR``); a missing
    folder is refused when the stage is built, an unset one before anything loads. Frames
    depend only on their own motion frame, so streaming per chunk equals the batch run.
    Output frames are the 512 x 512 face crop (``PreparedPortrait.crop``), or with
    ``paste_back`` the whole portrait.
    """

    name: ClassVar[str] = "liveportrait"
    Config: ClassVar[type] = LivePortraitConfig
    requires: ClassVar[tuple[str, ...]] = ("jaw_open",)
    uses: ClassVar[tuple[str, ...]] = tuple(
        dict.fromkeys(n for n in (*RATIO_NAMES, *EXPRESSION_DIRECTIONS) if n != "jaw_open")
    )
    spaces: ClassVar[tuple[str, ...]] = (LIVEPORTRAIT_SPACE,)

    def __init__(self, config=None, *, device="cpu") -> None:
        super().__init__(config, device=device)
        cfg = self.config
        self._check_weights(missing_ok=True)
        if cfg.dtype not in _DTYPES:
            raise ConfigError(
                f"liveportrait: dtype must be one of {', '.join(_DTYPES)}, got {cfg.dtype!r}"
            )
        if cfg.dtype != "float32" and self.device.type == "cpu":
            # PyTorch's CPU kernels lack half-precision 3D pooling, which W needs.
            raise ConfigError(
                f"liveportrait: dtype {cfg.dtype} runs on a GPU only (device=cuda); on the CPU "
                "use render.params.dtype=float32"
            )
        if cfg.networks not in _NETWORK_SIZES:
            raise ConfigError(
                f"liveportrait: networks must be one of {', '.join(_NETWORK_SIZES)}, "
                f"got {cfg.networks!r}"
            )
        if cfg.batch_frames < 1:
            raise ConfigError(
                f"liveportrait: batch_frames must be positive, got {cfg.batch_frames}"
            )
        if cfg.paste_back_max_side < 64:
            raise ConfigError(
                "liveportrait: paste_back_max_side must be at least 64 pixels, "
                f"got {cfg.paste_back_max_side}"
            )
        self.gains = MappingGains(cfg.head_rotation_gain, cfg.expression_gain, cfg.lip_open_ratio)
        self.models: Any = None
        self._analyzer = None
        self._prepared_size: tuple[int, int] | None = None

    @property
    def output_size(self) -> tuple[int, int]:
        """``(H, W)`` of the frames: the crop, or with ``paste_back`` the last prepared
        portrait's frame size (the crop's until a portrait is prepared)."""
        if self.config.paste_back and self._prepared_size is not None:
            return self._prepared_size
        return (CROP_SIZE, CROP_SIZE)

    def _check_weights(self, *, missing_ok: bool) -> None:
        """A given weights folder must exist (checked when the stage is built); an unset one
        is refused when loading (``talkingface plugins`` builds stages with their defaults)."""
        weights = self.config.weights
        if not weights:
            if missing_ok:
                return
            raise ConfigError(f"liveportrait needs weights: {WEIGHTS_HINT}")
        folder = Path(weights).expanduser()
        if not folder.is_dir():
            raise ConfigError(f"liveportrait: weights folder {folder} not found; {WEIGHTS_HINT}")

    def load(self) -> None:
        self._check_weights(missing_ok=False)
        from talkingface.face import FaceAnalyzer
        from talkingface.plugins.render.liveportrait import FULL_CONFIG, SMALL_CONFIG, load_models

        cfg = self.config
        sizes = {"full": FULL_CONFIG, "small": SMALL_CONFIG}[cfg.networks]
        self.models = load_models(
            Path(cfg.weights).expanduser(),
            device=self.device,
            dtype=_DTYPES[cfg.dtype],
            kernel_backend=cfg.backend,
            compile=cfg.compile,
            config=sizes,
        )
        self._analyzer = FaceAnalyzer(max_faces=4, static=True)
        self.loaded = True

    def prepare(self, portrait: Portrait) -> PreparedPortrait:
        from talkingface.face import eye_mouth_crop

        if not isinstance(portrait, Portrait):
            raise TypeError(f"liveportrait.prepare takes a Portrait, got {type(portrait).__name__}")
        self.ensure_loaded()
        face = self._analyzer.analyze(portrait.pixels, source=portrait.source)
        crop = eye_mouth_crop(portrait.pixels, face, size=CROP_SIZE)
        m = self.models
        with torch.no_grad():
            image = network_input(crop.image, m.config.input_size).to(self.device)
            feature_3d = m.extract_feature_3d(image)
            info = m.get_kp_info(image)
            kp_source = m.transform_keypoint(info)
            source = source_motion(info, crop.landmarks.points)
            lip_rest, eye_rest = rest_ratios(source)
            state = {
                "feature_3d": feature_3d,
                "kp_source": kp_source,
                "source": source,
                "lip_rest": m.retarget_lip(kp_source, lip_rest),
                "eye_rest": m.retarget_eye(kp_source, eye_rest),
            }
        size = (CROP_SIZE, CROP_SIZE)
        if self.config.paste_back:
            from talkingface.face import as_rgb_uint8, build_paste_back

            paste = build_paste_back(
                as_rgb_uint8(portrait.pixels),
                crop.matrix.numpy(),
                paste_mask(CROP_SIZE),
                self.config.paste_back_max_side,
            )
            state["paste"] = paste
            size = paste.size
            self._prepared_size = size
        return PreparedPortrait(portrait, self.name, size, state, crop)

    def render(self, prepared: PreparedPortrait, motion: Motion) -> Frames:
        self.check_render_args(prepared, motion)
        state = prepared.state
        if "kp_source" not in state or ("paste" in state) != self.config.paste_back:
            raise ContractError(
                f"liveportrait: this portrait was prepared by {prepared.renderer!r} "
                f"(paste_back {'paste' in state}); prepare it with this renderer"
            )
        use_latent = motion.latent is not None and motion.space == LIVEPORTRAIT_SPACE
        paste = state.get("paste")
        out = torch.empty((motion.num_frames, *prepared.size, 3), dtype=torch.uint8)
        step = self.config.batch_frames
        with torch.no_grad():
            for start in range(0, motion.num_frames, step):
                part = motion.slice(start, start + step)
                crops = self._render_batch(state, part, use_latent)
                target = out[start : start + part.num_frames]
                if paste is None:
                    target[:] = crops
                else:
                    paste.composite(crops, out=target)
        return Frames(out, motion.fps, motion.start_frame)

    def driving_keypoints(self, prepared: PreparedPortrait, motion: Motion) -> torch.Tensor:
        """``[T, 21, 3]`` driving keypoints of ``motion`` (retargeting and stitching applied),
        on the render device: what W warps the portrait's volume to."""
        use_latent = motion.latent is not None and motion.space == LIVEPORTRAIT_SPACE
        with torch.no_grad():
            return self._driving(prepared.state, motion, use_latent)

    def _driving(self, state: dict, motion: Motion, use_latent: bool) -> torch.Tensor:
        m, source = self.models, state["source"]
        kp_source = state["kp_source"]
        frames = motion.num_frames
        kp_source_t = kp_source.expand(frames, -1, -1)
        if use_latent:
            kp_driving = latent_keypoints(motion, source)
        else:
            kp_driving = semantic_keypoints(motion, source, self.gains)
            lip, eye = retarget_ratios(motion, source, self.gains)
            kp_driving = (kp_driving + m.retarget_lip(kp_source_t, lip) - state["lip_rest"]
                          + m.retarget_eye(kp_source_t, eye) - state["eye_rest"])  # fmt: skip
        if self.config.stitching:
            kp_driving = apply_stitching(kp_driving, m.stitch(kp_source_t, kp_driving))
        return kp_driving

    def _render_batch(self, state: dict, motion: Motion, use_latent: bool) -> torch.Tensor:
        """``uint8 [T, 512, 512, 3]`` face crops of one batch of motion frames."""
        frames = motion.num_frames
        kp_driving = self._driving(state, motion, use_latent)
        feature_3d = state["feature_3d"].expand(frames, *state["feature_3d"].shape[1:])
        kp_source = state["kp_source"].expand(frames, -1, -1)
        image = self.models.warp_decode(feature_3d, kp_source, kp_driving)["out"].float()
        self.kernel_backend = _backends_used()
        if image.shape[-2:] != (CROP_SIZE, CROP_SIZE):  # small test models decode smaller
            image = torch.nn.functional.interpolate(
                image, size=(CROP_SIZE, CROP_SIZE), mode="bilinear", align_corners=False
            )
        return (image.clamp(0, 1) * 255 + 0.5).to(torch.uint8).permute(0, 2, 3, 1).cpu()


def network_input(crop: torch.Tensor, size: int = 256) -> torch.Tensor:
    """The networks' input ``[1, 3, size, size]`` in 0..1 from a uint8 ``[512, 512, 3]`` crop
    (area filter, as upstream's cropper; the published networks take 256)."""
    import cv2

    small = cv2.resize(np.ascontiguousarray(crop.numpy()), (size, size),
                       interpolation=cv2.INTER_AREA)  # fmt: skip
    return torch.from_numpy(small).permute(2, 0, 1)[None].float() / 255.0


def source_motion(info: dict[str, torch.Tensor], crop_points: torch.Tensor) -> SourceMotion:
    """The mapping's view of a portrait: its keypoint info (``get_kp_info``) and the eye and
    lip ratios and face height measured on its landmarks in the 512 crop."""
    from talkingface.face import eye_openness
    from talkingface.face.landmarks import CHIN, FOREHEAD, MOUTH_CORNERS

    device = info["kp"].device
    points = crop_points.double()
    gap = (points[13, :2] - points[14, :2]).norm()
    width = (points[MOUTH_CORNERS[0], :2] - points[MOUTH_CORNERS[1], :2]).norm().clamp_min(1e-6)
    face_height = float((points[FOREHEAD, :2] - points[CHIN, :2]).norm()) * 2.0 / CROP_SIZE

    def tensor(value) -> torch.Tensor:
        return torch.as_tensor(value, dtype=torch.float32, device=device)

    angles = torch.cat([info["pitch"], info["yaw"], info["roll"]], 1).float()
    return SourceMotion(
        kp=info["kp"].float(),
        exp=info["exp"].float(),
        angles=angles,
        t=info["t"].float(),
        scale=info["scale"].float(),
        eye_ratio=tensor(eye_openness(crop_points)).reshape(1, 2),
        lip_ratio=tensor(float(gap / width)).reshape(1, 1),
        face_height=face_height,
    )


def apply_stitching(kp_driving: torch.Tensor, delta: torch.Tensor) -> torch.Tensor:
    """Driving keypoints ``[T, 21, 3]`` moved by the stitching network's output ``[T, 65]``:
    63 keypoint offsets, then an x/y shift of every keypoint (upstream's layout)."""
    frames, num_kp = kp_driving.shape[:2]
    offsets = delta[:, : 3 * num_kp].reshape(frames, num_kp, 3)
    shift = torch.zeros(frames, 1, 3, dtype=kp_driving.dtype, device=kp_driving.device)
    shift[:, 0, :2] = delta[:, 3 * num_kp : 3 * num_kp + 2]
    return kp_driving + offsets + shift


def paste_mask(size: int) -> np.ndarray:
    """float32 ``[size, size]`` blending weight of the face crop: 1 inside, falling linearly to
    0 over the outer ``16 / 512`` of the side at every border (upstream's mask template)."""
    ramp = _FEATHER * size
    axis = np.arange(size, dtype=np.float32)
    edge = np.minimum(axis, size - 1 - axis) / ramp
    return np.clip(np.minimum(edge[:, None], edge[None, :]), 0.0, 1.0).astype(np.float32)


def _backends_used() -> str | None:
    """The backends of the last warp3d and SPADE kernel calls, as one profile entry."""
    from talkingface.kernels import last_backend

    used = {op: last_backend(op) for op in ("warp3d", "spade_modulate")}
    names = set(filter(None, used.values()))
    if len(names) <= 1:
        return names.pop() if names else None
    return ", ".join(f"{op} {backend}" for op, backend in used.items() if backend)
