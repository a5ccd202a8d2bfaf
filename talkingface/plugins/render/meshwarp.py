"""The default renderer: animates the aligned portrait crop by warping it along its face mesh,
with a synthetic mouth interior where the lips part, and optionally pastes the animated crop
back into the whole portrait. Needs no weights; real time on a CPU."""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass
from typing import ClassVar

import torch

from talkingface.kernels import last_backend, warp2d
from talkingface.pipeline.contracts import (
    EXPRESSION_NAMES,
    Frames,
    Motion,
    Portrait,
    PreparedPortrait,
)
from talkingface.pipeline.errors import ConfigError, ContractError
from talkingface.pipeline.stages import Renderer
from talkingface.plugins.render.mesh import (
    BASIS_NAMES,
    DERIVED_BASES,
    FaceRig,
    backward_flow,
    build_rig,
    displace_points,
    redraw_closing_eye_,
)
from talkingface.plugins.render.mouth import MouthStyle, mouth_style, mouth_tile, shows_opening


@dataclass
class MeshWarpConfig:
    """Parameters of the ``meshwarp`` renderer.

    Attributes:
        size: side of the square output frames (the aligned face crop), in pixels.
        face_scale: crop side / face size; 2.0 leaves room for hair, neck and background.
        flow_grid: coarse flow nodes per side; finer follows lips and lids more closely
            (64 is faster, 256 sharper).
        mouth_interior: draw the cavity, teeth and tongue where the lips part (off: the
            stretched lip line shows instead).
        jaw_drop: lower-lip travel at ``jaw_open = 1``, in face heights (forehead to chin).
        head_rotation_gain: multiplies yaw, pitch and roll before rendering.
        head_depth: how much of the face's measured depth head rotation uses (1 = all): the
            nose moves more than the cheeks as the head turns, but a warp cannot hide the far
            cheek, so full depth stretches the near side and folds the far side more.
        expression_gain: multiplies every expression coefficient.
        inverse_iterations: Newton steps that invert the forward displacement (3 leave under
            a pixel of error on the chin of a wide-open jaw; 0 = the one-step -d(p)).
        chunk_frames: frames rendered together (bigger batches amortise per-call overhead).
        backend: ``warp2d`` kernel backend: "auto", "torch" or "triton" (None: process default).
        paste_back: output the whole portrait with the animated face composited in place,
            instead of the ``size`` x ``size`` face crop. Frames then have the portrait's own
            size (see ``paste_back_max_side``); the crop is feathered in along a still band
            and the picture outside it keeps its pixels. The face keeps the crop's resolution
            (its height is about ``size / face_scale`` pixels): for a face much larger than
            that in the portrait, raise ``size``.
        paste_back_max_side: with ``paste_back``, portraits whose longer side is above this
            are scaled down to it (area filter); an odd width or height loses its last
            column or row (H.264 needs even sides). 1920 keeps a 1080p picture as it is.
    """

    size: int = 512
    face_scale: float = 2.0
    flow_grid: int = 128
    mouth_interior: bool = True
    jaw_drop: float = 0.13
    head_rotation_gain: float = 1.0
    head_depth: float = 0.6
    expression_gain: float = 1.0
    inverse_iterations: int = 3
    chunk_frames: int = 16
    backend: str | None = None
    paste_back: bool = False
    paste_back_max_side: int = 1920


# Coefficient ranges: openings and blinks are 0..1 (beyond 1 the lids would cross).
_RANGES = {"jaw_open": (0.0, 1.3), "blink_l": (0.0, 1.0), "blink_r": (0.0, 1.0)}


class MeshWarpRenderer(Renderer):
    """Animates the portrait by warping it along its face mesh; no weights, real time on a CPU.

    ``prepare`` finds the face, crops it to ``size`` and builds the rig; ``render`` turns each
    motion frame into a backward flow and a mouth tile and hands both to ``warp2d``, then
    redraws nearly closed eyes at full resolution. Frames depend only on their own motion
    frame, so streaming per chunk equals the batch run. Output frames are the aligned crop
    (``PreparedPortrait.crop`` holds it, with its matrix and landmarks), or with ``paste_back``
    the whole portrait with the crop composited back (:mod:`talkingface.face.paste`); then
    ``output_size`` is the size of the most recently prepared portrait's frames, and each
    ``PreparedPortrait.size`` is that portrait's.
    Left/right follow the image: ``blink_l`` closes the eye on the image's left, ``gaze_x > 0``
    looks to the image's right.
    """

    name: ClassVar[str] = "meshwarp"
    Config: ClassVar[type] = MeshWarpConfig
    requires: ClassVar[tuple[str, ...]] = ("jaw_open",)
    uses: ClassVar[tuple[str, ...]] = tuple(n for n in EXPRESSION_NAMES if n != "jaw_open")

    def __init__(self, config=None, *, device="cpu") -> None:
        super().__init__(config, device=device)
        cfg = self.config
        if cfg.size < 64:
            raise ConfigError(f"meshwarp: size must be at least 64 pixels, got {cfg.size}")
        if not 2 <= cfg.flow_grid <= cfg.size:
            raise ConfigError(
                f"meshwarp: flow_grid must be between 2 and size ({cfg.size}), got {cfg.flow_grid}"
            )
        if cfg.inverse_iterations < 0:
            raise ConfigError(
                f"meshwarp: inverse_iterations must be 0 or more, got {cfg.inverse_iterations}"
            )
        if cfg.chunk_frames < 1:
            raise ConfigError(f"meshwarp: chunk_frames must be positive, got {cfg.chunk_frames}")
        if cfg.paste_back_max_side < 64:
            raise ConfigError(
                f"meshwarp: paste_back_max_side must be at least 64 pixels, "
                f"got {cfg.paste_back_max_side}"
            )
        self._analyzer = None
        self._prepared_size: tuple[int, int] | None = None

    @property
    def output_size(self) -> tuple[int, int]:
        """``(H, W)`` of the frames: the crop, or with ``paste_back`` the last prepared
        portrait's frame size (the crop's until a portrait is prepared)."""
        if self.config.paste_back and self._prepared_size is not None:
            return self._prepared_size
        return (self.config.size, self.config.size)

    def load(self) -> None:
        from talkingface.face import FaceAnalyzer

        self._analyzer = FaceAnalyzer(max_faces=4, static=True)
        self.loaded = True

    def prepare(self, portrait: Portrait) -> PreparedPortrait:
        from talkingface.face import align_crop

        if not isinstance(portrait, Portrait):
            raise TypeError(f"meshwarp.prepare takes a Portrait, got {type(portrait).__name__}")
        self.ensure_loaded()
        cfg = self.config
        face = self._analyzer.analyze(portrait.pixels, source=portrait.source)
        crop = align_crop(
            portrait.pixels, face, size=cfg.size, face_scale=cfg.face_scale, cubic=cfg.paste_back
        )
        points = crop.landmarks.points
        rig = build_rig(
            points, cfg.size, cfg.flow_grid, cfg.jaw_drop, cfg.head_depth, device=self.device
        )
        style = mouth_style(crop.image, points, rig)
        state = {
            "image": crop.image[None].to(self.device),
            "rig": rig,
            "mouth": style,
        }
        size = (cfg.size, cfg.size)
        if cfg.paste_back:
            from talkingface.face import as_rgb_uint8
            from talkingface.plugins.render.paste import build_mesh_paste

            paste = build_mesh_paste(
                as_rgb_uint8(portrait.pixels), crop.matrix.numpy(), rig, cfg.paste_back_max_side
            )
            paste.flow_gain = paste.flow_gain.to(self.device)
            state["paste"] = paste
            size = paste.paste.size
            self._prepared_size = size
            enlargement = paste.paste.enlargement
            if enlargement > 1.3:
                better = min(2048, 64 * math.ceil(cfg.size * enlargement / 64))
                warnings.warn(
                    f"paste_back: the face is rendered at {cfg.size} px and enlarged "
                    f"{enlargement:.1f}x into {portrait.source or 'the portrait'}, so it "
                    f"looks softer than the picture around it; render.params.size={better} "
                    "keeps its detail (and costs more time per frame)",
                    stacklevel=2,
                )
        return PreparedPortrait(portrait, self.name, size, state, crop)

    def render(self, prepared: PreparedPortrait, motion: Motion) -> Frames:
        self.check_render_args(prepared, motion)
        state = prepared.state
        if (
            "rig" not in state
            or state["rig"].size != self.config.size
            or ("paste" in state) != self.config.paste_back
        ):
            raise ContractError(
                f"meshwarp: this portrait was prepared by {prepared.renderer!r} at size "
                f"{prepared.size} (paste_back {'paste' in state}); prepare it with this renderer"
            )
        rig: FaceRig = state["rig"]
        style: MouthStyle = state["mouth"]
        image = state["image"]
        paste = state.get("paste")
        out = torch.empty((motion.num_frames, *prepared.size, 3), dtype=torch.uint8)
        step = self.config.chunk_frames
        with torch.no_grad():
            for start in range(0, motion.num_frames, step):
                part = motion.slice(start, start + step)
                target = out[start : start + part.num_frames]
                if paste is None:
                    target[:] = self._render_chunk(rig, style, image, part)
                else:
                    crops = self._render_chunk(rig, style, image, part, paste.flow_gain)
                    paste.paste.composite(crops, out=target)
        return Frames(out, motion.fps, motion.start_frame)

    def coefficients(self, motion: Motion) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """``(coeffs [T, K] for BASIS_NAMES, pose [T, 6], tongue [T])`` on the render device."""
        cfg = self.config

        def get(name: str) -> torch.Tensor:
            lo, hi = _RANGES.get(name, (-1.0, 1.0))
            return (motion.get(name) * cfg.expression_gain).clamp(lo, hi)

        columns = {name: get(name) for name in BASIS_NAMES if name not in DERIVED_BASES}
        columns["lip_close"] = columns["jaw_open"] * columns["lip_press"].clamp(0, 1)
        columns["lip_seal"] = columns["lip_press"].clamp(0, 1)
        coeffs = torch.stack([columns[name] for name in BASIS_NAMES], 1)
        pose = motion.pose.clone()
        pose[:, 5] = pose[:, 5].clamp(0.5, 2.0)
        return coeffs.to(self.device), pose.to(self.device), get("tongue").to(self.device)

    def _render_chunk(self, rig, style, image, motion: Motion, flow_gain=None) -> torch.Tensor:
        cfg = self.config
        coeffs, pose, tongue = self.coefficients(motion)
        flow = backward_flow(rig, coeffs, pose, cfg.head_rotation_gain, cfg.inverse_iterations)
        if flow_gain is not None:  # paste-back: still along the crop border (see paste.py)
            flow = flow * flow_gain[None, :, :, None]
        overlay = origin = None
        if cfg.mouth_interior:
            lips = torch.cat([rig.upper_lip, rig.lower_lip])
            moved = displace_points(rig, coeffs, pose, cfg.head_rotation_gain, lips)
            n = len(rig.upper_lip)
            rest = rig.points[:, :2]
            opening = shows_opening(flow, rig.size, rest[rig.upper_lip], rest[rig.lower_lip],
                                    style.tile) if style.rest_gap > 1.5 else None
            overlay, origin = mouth_tile(
                style, moved[:, :n], moved[:, n:], pose[:, 5], tongue, rig.mouth_width, opening
            )
        frames = warp2d(image, flow, overlay, origin, backend=cfg.backend)
        self.kernel_backend = last_backend("warp2d")
        for eye in range(len(rig.lids)):
            redraw_closing_eye_(frames, image, rig, eye, coeffs, pose, cfg.head_rotation_gain)
        return frames.cpu()
