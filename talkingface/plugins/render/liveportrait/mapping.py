"""Our motion -> LivePortrait's driving keypoints: semantic ``Motion`` (pose + named expression)
through upstream's rotation convention, retargeting ratios and keypoint directions, and the
``LIVEPORTRAIT_SPACE`` latent read column by column.

The driving keypoints of a frame are upstream's ``scale * (kp_c @ R + exp) + (t_x, t_y, 0)``
with the portrait's own canonical keypoints ``kp_c``:

- head pose: our yaw/pitch/roll (radians, relative to the portrait) are added, in degrees, to
  the portrait's own angles as the motion extractor sees them (upstream's image retargeting
  does the same); ``R`` is upstream's Euler convention (:mod:`.keypoints`);
- head distance: ``Motion.pose`` scale multiplies the portrait's keypoint scale; tx/ty (in face
  heights, image right/down) shift ``t`` by the face height in keypoint units;
- smile, frown, brows, gaze, mouth width and rounding: offsets of the expression ``exp`` along
  the keypoints and axes upstream's image-retargeting sliders move (``src/gradio_pipeline.py``,
  ``update_delta_new_*``), per unit of our coefficient (:data:`EXPRESSION_DIRECTIONS`);
- jaw opening and lip press: a target lip-open ratio for the lip retargeting network;
  blinks: a target eye-open ratio for the eye retargeting network (:func:`retarget_ratios`).

Everything here is per frame, so streaming equals batch.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from talkingface.pipeline.contracts import LIVEPORTRAIT_LATENT, LIVEPORTRAIT_SPACE, Motion
from talkingface.pipeline.errors import ContractError
from talkingface.plugins.render.liveportrait.keypoints import transform_keypoints

NUM_KEYPOINTS = 21
LATENT_WIDTH = sum(width for _, width in LIVEPORTRAIT_LATENT)
_X, _Y, _Z = 0, 1, 2

POSE_SIGNS: dict[str, float] = {"yaw": 1.0, "pitch": 1.0, "roll": -1.0}
"""Our angle -> LivePortrait's angle of the same name. Upstream's ``R`` acts on keypoints with
x right and y down as in the image: its positive roll turns the face clockwise as seen, ours
counterclockwise, hence the minus. Yaw and pitch keep their sign under the head-pose
convention its 66 pose bins come from (positive pitch looks up, positive yaw turns the nose to
the image right, as ours); this was not checked against the published weights."""

_SMILE = ((20, _Y, -0.01), (14, _Y, -0.02), (17, _Y, 0.0065), (17, _Z, 0.003),
          (13, _Y, -0.00275), (16, _Y, -0.00275), (3, _Y, -0.0035), (7, _Y, -0.0035))  # fmt: skip


def _scaled(direction, factor: float):
    return tuple((kp, axis, weight * factor) for kp, axis, weight in direction)


EXPRESSION_DIRECTIONS: dict[str, tuple[tuple[tuple[int, int, float], ...], ...]] = {
    # name: (offsets per unit for a positive coefficient, per unit of its magnitude for a
    # negative one), each offset (keypoint, axis, amount). Units: smile 1 = upstream's smile
    # slider at 1; frown 1 = smile slider at -0.3 (its lower end); brow_up / brow_down 1 =
    # eyebrow slider at +15 / -15; gaze 1 = eyeball slider at 30 (its horizontal end; the
    # vertical one carries upstream's lid coupling, blink = -y / 2); mouth_wide 1 = grin
    # slider at 10; mouth_round 1 = pursing slider at 10.
    "smile": (_SMILE, _scaled(_SMILE, -1.0)),
    "frown": (_scaled(_SMILE, -0.3), _scaled(_SMILE, 0.3)),
    "brow_up": (((1, _Y, 0.015), (2, _Y, -0.015)),
                ((1, _X, 0.015), (2, _X, -0.015), (1, _Y, -0.0045), (2, _Y, 0.0045))),
    "brow_down": (((1, _X, 0.015), (2, _X, -0.015), (1, _Y, -0.0045), (2, _Y, 0.0045)),
                  ((1, _Y, 0.015), (2, _Y, -0.015))),
    "gaze_x": (((11, _X, 0.021), (15, _X, 0.03)), ((11, _X, -0.03), (15, _X, -0.021))),
    "gaze_y": (((11, _Y, -0.015), (15, _Y, -0.015), (13, _Y, -0.0045), (16, _Y, -0.0045)),
               ((11, _Y, 0.015), (15, _Y, 0.015), (13, _Y, 0.0045), (16, _Y, 0.0045))),
    "mouth_wide": (((20, _Z, -0.01), (20, _Y, -0.01), (14, _Y, -0.01)),
                   ((20, _Z, 0.01), (20, _Y, 0.01), (14, _Y, 0.01))),
    "mouth_round": (((14, _Y, 0.01), (3, _Y, -0.005), (7, _Y, -0.005), (17, _Z, -0.005)),
                    ((14, _Y, -0.01), (3, _Y, 0.005), (7, _Y, 0.005), (17, _Z, 0.005))),
}  # fmt: skip
"""Keypoint-space directions of the expression coefficients the renderer draws by offsetting
``exp`` (jaw, lip press and blinks go through the retargeting networks instead)."""

RATIO_NAMES: tuple[str, ...] = ("jaw_open", "lip_press", "blink_l", "blink_r")
"""Coefficients that set the retargeting ratios."""


def _basis() -> torch.Tensor:
    """``[N, 2, 21, 3]``: the directions of :data:`EXPRESSION_DIRECTIONS` as tensors."""
    basis = torch.zeros(len(EXPRESSION_DIRECTIONS), 2, NUM_KEYPOINTS, 3)
    for i, sides in enumerate(EXPRESSION_DIRECTIONS.values()):
        for side, offsets in enumerate(sides):
            for kp, axis, amount in offsets:
                basis[i, side, kp, axis] += amount
    return basis


_BASIS = _basis()


@dataclass(frozen=True)
class SourceMotion:
    """What the mapping needs of one prepared portrait (computed once, on the render device).

    Attributes:
        kp: float32 ``[1, 21, 3]`` canonical keypoints of the portrait.
        exp: float32 ``[1, 21, 3]`` its expression deformation.
        angles: float32 ``[1, 3]`` its pitch, yaw, roll in degrees.
        t: float32 ``[1, 3]`` its translation.
        scale: float32 ``[1, 1]`` its keypoint scale.
        eye_ratio: float32 ``[1, 2]`` eyelid gap / eye width of each eye, image-left first.
        lip_ratio: float32 ``[1, 1]`` inner-lip gap / mouth width.
        face_height: forehead-to-chin distance in keypoint units (2 = the crop's side).
    """

    kp: torch.Tensor
    exp: torch.Tensor
    angles: torch.Tensor
    t: torch.Tensor
    scale: torch.Tensor
    eye_ratio: torch.Tensor
    lip_ratio: torch.Tensor
    face_height: float


@dataclass(frozen=True)
class MappingGains:
    """How strongly semantic motion drives the keypoints (the renderer's config fields).

    Attributes:
        head_rotation: multiplies yaw, pitch and roll.
        expression: multiplies every expression coefficient.
        lip_open_ratio: inner-lip gap / mouth width added at ``jaw_open = 1`` (upstream's
            lip slider goes up to 0.8).
    """

    head_rotation: float = 1.0
    expression: float = 1.0
    lip_open_ratio: float = 0.6


def place_keypoints(
    kp: torch.Tensor,
    angles: torch.Tensor,
    exp: torch.Tensor,
    t: torch.Tensor,
    scale: torch.Tensor,
) -> torch.Tensor:
    """``scale * (kp @ R(angles) + exp) + (t_x, t_y, 0)`` for every frame, on one portrait's
    canonical keypoints (upstream's transform, :func:`.keypoints.transform_keypoints`).

    Args:
        kp: ``[1 or T, 21, 3]`` canonical keypoints.
        angles: ``[T, 3]`` pitch, yaw, roll in degrees.
        exp: ``[T, 21, 3]``.
        t: ``[T, 3]`` (z unused).
        scale: ``[T, 1]``.

    Returns:
        ``[T, 21, 3]``.
    """
    frames = angles.shape[0]
    return transform_keypoints(kp.expand(frames, -1, -1), angles[:, 0:1], angles[:, 1:2],
                               angles[:, 2:3], exp, scale, t)  # fmt: skip


def expression_offsets(motion: Motion, gain: float = 1.0) -> torch.Tensor:
    """``[T, 21, 3]`` offsets of ``exp`` for the motion's smile, brows, gaze and mouth shape
    (names the motion lacks count as 0)."""
    coeffs = torch.stack([motion.get(name) for name in EXPRESSION_DIRECTIONS], 1) * gain
    coeffs = coeffs.clamp(-1.5, 1.5)
    positive, negative = coeffs.clamp(min=0), (-coeffs).clamp(min=0)
    return (torch.einsum("tn,nkc->tkc", positive, _BASIS[:, 0])
            + torch.einsum("tn,nkc->tkc", negative, _BASIS[:, 1]))  # fmt: skip


def retarget_ratios(
    motion: Motion, source: SourceMotion, gains: MappingGains
) -> tuple[torch.Tensor, torch.Tensor]:
    """Target ratios for the retargeting networks, as upstream lays them out.

    The lip target is the portrait's own lip ratio plus ``jaw_open * lip_open_ratio``, times
    ``1 - lip_press``: a press closes even lips the portrait shows parted. The eye target is
    the portrait's mean eye ratio times ``1 - blink`` (the network takes one target for both
    eyes, so the two blinks are averaged).

    Returns:
        ``(lip [T, 2], eye [T, 3])``: lip = (source ratio, target), eye = (source left,
        source right, target), on ``source``'s device.
    """
    t = motion.num_frames
    device = source.kp.device
    gain = gains.expression
    jaw = (motion.get("jaw_open") * gain).clamp(0.0, 1.3).to(device)
    press = (motion.get("lip_press") * gain).clamp(0.0, 1.0).to(device)
    blink = ((motion.get("blink_l") + motion.get("blink_r")) / 2 * gain).clamp(0.0, 1.0)
    lip_target = (source.lip_ratio[0, 0] + jaw * gains.lip_open_ratio) * (1.0 - press)
    eye_target = source.eye_ratio[0].mean() * (1.0 - blink.to(device))
    lip = torch.cat([source.lip_ratio.expand(t, 1), lip_target[:, None]], 1)
    eye = torch.cat([source.eye_ratio.expand(t, 2), eye_target[:, None]], 1)
    return lip, eye


def rest_ratios(source: SourceMotion) -> tuple[torch.Tensor, torch.Tensor]:
    """``(lip [1, 2], eye [1, 3])`` targets equal to the portrait's own ratios: the
    retargeting networks' output for them is subtracted, so neutral motion is the portrait."""
    lip = torch.cat([source.lip_ratio, source.lip_ratio], 1)
    eye = torch.cat([source.eye_ratio, source.eye_ratio.mean(1, keepdim=True)], 1)
    return lip, eye


def semantic_keypoints(motion: Motion, source: SourceMotion, gains: MappingGains) -> torch.Tensor:
    """Driving keypoints ``[T, 21, 3]`` of semantic motion before retargeting and stitching.

    Neutral motion (zero pose angles and shifts, scale 1, zero expression) gives the
    portrait's own keypoints exactly.
    """
    device = source.kp.device
    pose = motion.pose.to(device)
    ours = torch.stack([pose[:, 1], pose[:, 0], pose[:, 2]], 1)  # pitch, yaw, roll
    signs = torch.tensor([POSE_SIGNS["pitch"], POSE_SIGNS["yaw"], POSE_SIGNS["roll"]],
                         device=device)  # fmt: skip
    angles = source.angles + torch.rad2deg(ours) * signs * gains.head_rotation
    scale = source.scale * pose[:, 5:6].clamp(0.5, 2.0)
    t = source.t.expand(motion.num_frames, 3).clone()
    t[:, :2] += pose[:, 3:5] * source.face_height
    exp = source.exp + expression_offsets(motion, gains.expression).to(device)
    return place_keypoints(source.kp, angles, exp, t, scale)


def latent_keypoints(motion: Motion, source: SourceMotion) -> torch.Tensor:
    """Driving keypoints ``[T, 21, 3]`` from a :data:`LIVEPORTRAIT_SPACE` latent ``[T, 70]``
    (absolute angles, translation, scale and expression, placed on the portrait's canonical
    keypoints)."""
    if motion.latent is None or motion.space != LIVEPORTRAIT_SPACE:
        raise ContractError(
            f"liveportrait: expected a motion latent in space {LIVEPORTRAIT_SPACE!r}, "
            f"got {motion.space or 'none'}"
        )
    latent = motion.latent.to(source.kp.device)
    if latent.shape[1] != LATENT_WIDTH:
        raise ContractError(
            f"liveportrait: a {LIVEPORTRAIT_SPACE!r} latent has {LATENT_WIDTH} columns "
            f"({', '.join(f'{n} {w}' for n, w in LIVEPORTRAIT_LATENT)}), got {latent.shape[1]}"
        )
    parts, start = {}, 0
    for name, width in LIVEPORTRAIT_LATENT:
        parts[name] = latent[:, start : start + width]
        start += width
    angles = torch.cat([parts["pitch"], parts["yaw"], parts["roll"]], 1)
    exp = parts["exp"].reshape(-1, NUM_KEYPOINTS, 3)
    return place_keypoints(source.kp, angles, exp, parts["t"], parts["scale"])


def source_latent(source: SourceMotion, frames: int = 1) -> torch.Tensor:
    """The portrait's own motion as a ``[frames, 70]`` latent (what a latent generator starts
    from; rendering it reproduces the portrait as neutral semantic motion does)."""
    columns = {
        "exp": source.exp.reshape(1, -1),
        "pitch": source.angles[:, 0:1],
        "yaw": source.angles[:, 1:2],
        "roll": source.angles[:, 2:3],
        "t": source.t,
        "scale": source.scale,
    }
    row = torch.cat([columns[name] for name, _ in LIVEPORTRAIT_LATENT], 1)
    return row.expand(frames, -1).float().cpu().contiguous()
