"""Mouth interior of the ``meshwarp`` renderer: an RGBA tile (cavity, teeth, tongue) that fills
the gap between the parted lips, coloured from the portrait's own lips and skin."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch

from talkingface.plugins.render.mesh import LOWER_OUTER_LIP, UPPER_OUTER_LIP, FaceRig

# Tooth boundaries across the mouth, in fractions of the half-width between the lip corners.
_UPPER_TEETH = (0.0, 0.3, 0.52)
_LOWER_TEETH = (0.0, 0.2, 0.38)
_TEETH_RGB = (238.0, 232.0, 218.0)
_CHEEK_POINTS = (50, 280, 187, 411)


@dataclass
class MouthStyle:
    """Colours (0..255 RGB) and sizes of the mouth interior of one portrait.

    Attributes:
        cavity: float32 ``[3]`` the dark inside of the mouth.
        teeth: float32 ``[3]`` teeth, lit like the face.
        tongue: float32 ``[3]`` tongue.
        tile: ``(th, tw)`` tile size in pixels, enough for the widest, most open mouth.
        rest_gap: inner-lip gap at the mouth centre in the portrait (pixels).
        lips: float32 ``[3]`` the lips' own colour (for the seam of lips that close a gap the
            portrait has).
    """

    cavity: torch.Tensor
    teeth: torch.Tensor
    tongue: torch.Tensor
    tile: tuple[int, int]
    rest_gap: float
    lips: torch.Tensor


def mouth_style(image: torch.Tensor, landmarks: torch.Tensor, rig: FaceRig) -> MouthStyle:
    """Sample lip and skin colours from the crop ``image [H, W, 3]`` uint8 at ``landmarks
    [478, 3]`` and derive the interior's colours from them; sizes come from the ``rig``."""
    pixels = image.float()
    h, w = pixels.shape[:2]

    def sample(xy: torch.Tensor) -> torch.Tensor:  # median colour of 3x3 patches at xy [n, 2]
        offsets = torch.tensor([(dx, dy) for dx in (-1, 0, 1) for dy in (-1, 0, 1)])
        where = (xy.round().long()[:, None] + offsets).reshape(-1, 2)
        x = where[:, 0].clamp(0, w - 1)
        y = where[:, 1].clamp(0, h - 1)
        return pixels[y, x].median(0).values

    xy = landmarks[:, :2].cpu()
    outer = xy[list(UPPER_OUTER_LIP[2:-2]) + list(LOWER_OUTER_LIP[2:-2])]
    centre = xy[[13, 14]].mean(0)
    lip = sample(outer + 0.35 * (centre - outer))  # between the outer contour and the centre
    skin = sample(xy[list(_CHEEK_POINTS)])
    # Shade like the face: the portrait's light level, and a little of its colour cast.
    light = float((skin @ torch.tensor([0.299, 0.587, 0.114])) / 175.0)
    light = min(max(light, 0.35), 1.15)
    cast = (skin / skin.mean().clamp_min(1.0)).clamp(0.8, 1.25) ** 0.35
    teeth = (torch.tensor(_TEETH_RGB) * light * cast).clamp(0, 255)
    cavity = lip * 0.22 + torch.tensor([6.0, 0.0, 2.0]) * light
    tongue = (lip * 0.7 + torch.tensor([60.0, 20.0, 25.0]) * light).clamp(0, 255)
    mid = len(rig.upper_lip) // 2
    lips = rig.points[torch.stack([rig.upper_lip[mid], rig.lower_lip[mid]]), :2].cpu()
    rest_gap = float((lips[1] - lips[0]).norm())
    tile_w = int(1.7 * rig.mouth_width) + 8
    tile_h = int(0.5 * rig.mouth_width + 1.4 * rig.jaw_drop + rest_gap) + 8
    return MouthStyle(cavity, teeth, tongue, (tile_h, tile_w), rest_gap, lip)


def _interp(xq: torch.Tensor, xs: torch.Tensor, ys: torch.Tensor) -> torch.Tensor:
    """Piecewise-linear ``y(xq)`` per frame: ``xq [T, Q]``, polyline ``xs, ys [T, n]``."""
    xs = torch.cummax(xs, dim=1).values  # a turned head may fold the contour: keep it monotone
    i = torch.searchsorted(xs.contiguous(), xq.contiguous()).clamp(1, xs.shape[1] - 1)
    x0, x1 = xs.gather(1, i - 1), xs.gather(1, i)
    y0, y1 = ys.gather(1, i - 1), ys.gather(1, i)
    t = ((xq - x0) / (x1 - x0).clamp_min(1e-4)).clamp(0, 1)
    return y0 + t * (y1 - y0)


def _tooth_gaps(u: torch.Tensor, bounds: tuple[float, ...]) -> torch.Tensor:
    """Darkening (0..1) of the thin lines between teeth at horizontal position ``u``."""
    edges = torch.tensor(
        [s * b for b in bounds for s in (1, -1) if s > 0 or b > 0], device=u.device
    )
    return torch.exp(-(((u[..., None] - edges) / 0.025) ** 2)).amax(-1)


def mouth_tile(
    style: MouthStyle,
    upper: torch.Tensor,
    lower: torch.Tensor,
    scale: torch.Tensor,
    tongue: torch.Tensor,
    mouth_width: float,
    opening: Callable[[torch.Tensor], torch.Tensor] | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """RGBA tiles of the mouth interior and where they go.

    Args:
        style: the portrait's :class:`MouthStyle`.
        upper: ``[T, n, 2]`` the upper inner lip in output pixels, left corner to right corner.
        lower: ``[T, n, 2]`` the lower inner lip, same corners.
        scale: ``[T]`` head scale of each frame (the rest gap grows with it).
        tongue: ``[T]`` tongue coefficient (0 = resting low, 1 = raised and forward).
        mouth_width: outer mouth width at rest (pixels).
        opening: ``origin [T, 2] -> [T, th, tw]``, how much each tile pixel shows of the
            portrait's own mouth opening (see :func:`shows_opening`); lips that close that
            opening cover it with a seam. None: no seam.

    Returns:
        ``overlay [T, th, tw, 4]`` straight-alpha RGBA (colour 0..255, alpha 0..1) and
        ``origin [T, 2]`` int64 (y0, x0) of each tile in the frame.
    """
    t = len(upper)
    th, tw = style.tile
    device = upper.device
    centre = (upper.mean(1) + lower.mean(1)) / 2  # [T, 2] (x, y)
    origin = torch.stack([centre[:, 1] - th / 2, centre[:, 0] - tw / 2], 1).round().long()
    ys = origin[:, 0, None].float() + torch.arange(th, device=device)  # [T, th]
    xs = origin[:, 1, None].float() + torch.arange(tw, device=device)  # [T, tw]
    top = _interp(xs, upper[..., 0], upper[..., 1])[:, None, :]  # [T, 1, tw]
    bottom = _interp(xs, lower[..., 0], lower[..., 1])[:, None, :]
    left = torch.minimum(upper[:, 0, 0], lower[:, 0, 0])[:, None]
    right = torch.maximum(upper[:, -1, 0], lower[:, -1, 0])[:, None]
    y = ys[:, :, None]  # [T, th, 1]
    across = ((xs - left) * (right - xs) > 0).float()[:, None, :]
    # Anti-aliased coverage between the lips (vertical edges; the corners taper to nothing).
    # Edges a little softer than a pixel, like the lips of a photo.
    coverage = ((y - top) / 1.6 + 0.5).clamp(0, 1) * ((bottom - y) / 1.6 + 0.5).clamp(0, 1)
    coverage = coverage * across
    # Fade in over the first pixels of opening, so a resting mouth keeps its own look.
    mid = upper.shape[1] // 2
    gap_now = (lower[:, mid] - upper[:, mid]).norm(dim=-1)
    fade = ((gap_now - style.rest_gap * scale) / 3.0).clamp(0, 1)[:, None, None]

    gap = (bottom - top).clamp_min(0.0)
    half = ((right - left) / 2).clamp_min(1.0)[:, None]  # [T, 1, 1]
    u = ((xs[:, None, :] - (left[:, None] + half)) / half).clamp(-1.5, 1.5)  # [T, 1, tw]
    size = mouth_width * scale[:, None, None]
    # Teeth recede towards the corners, where the cheeks leave the mouth dark.
    arch = (1 - (u / 0.85) ** 2).clamp_min(0).sqrt()
    corners_dark = 1 - 0.6 * u**2
    # Less light reaches the teeth of a mouth that is barely open.
    lit = 0.6 + 0.4 * (gap / (0.25 * size)).clamp(0, 1)
    cavity = style.cavity.to(device) * (0.75 + 0.25 * (1 - u**2)).unsqueeze(-1)
    depth = ((y - top) / gap.clamp_min(1.0)).clamp(0, 1)  # 0 under the upper lip, 1 at the lower
    tongue_y = bottom - gap * (0.12 + 0.25 * tongue[:, None, None])
    tongue_in = (1 - (u / 0.62) ** 2 - ((y - tongue_y) / (0.45 * gap + 1)) ** 2).clamp(0, 0.3) / 0.3
    tongue_in = tongue_in * (0.55 + 0.45 * tongue[:, None, None]).clamp(0, 1)
    tongue_rgb = style.tongue.to(device) * (0.6 + 0.4 * depth).unsqueeze(-1)

    upper_len = torch.minimum(0.13 * size * arch, 0.4 * gap + 0.5)
    upper_teeth = (top + upper_len - y + 0.5).clamp(0, 1)
    lower_len = torch.minimum(0.05 * size * arch, 0.12 * gap)
    lower_teeth = (y - (bottom - lower_len) + 0.5).clamp(0, 1)
    shadow = 0.7 + 0.3 * ((y - top) / 3.0).clamp(0, 1)  # the upper lip shades the teeth
    teeth = style.teeth.to(device)
    upper_shade = lit * corners_dark * shadow * (1 - 0.12 * _tooth_gaps(u, _UPPER_TEETH))
    lower_shade = 0.65 * lit * corners_dark * (1 - 0.12 * _tooth_gaps(u, _LOWER_TEETH))
    upper_rgb = teeth * upper_shade[..., None]
    lower_rgb = teeth * lower_shade[..., None]

    rgb = cavity.expand(t, th, tw, 3)
    rgb = torch.lerp(rgb, tongue_rgb, tongue_in.unsqueeze(-1))
    rgb = torch.lerp(rgb, lower_rgb.expand(t, th, tw, 3), (lower_teeth * arch).unsqueeze(-1))
    rgb = torch.lerp(rgb, upper_rgb.expand(t, th, tw, 3), (upper_teeth * arch).unsqueeze(-1))
    alpha = coverage * fade
    # Lips closing a gap the portrait has (p/b/m on parted lips): the warp squeezes the
    # portrait's own mouth opening (teeth, dark) into a thin, uneven line along the coarse
    # flow grid. Where the pixels still show that opening, lip colour with a dark seam in the
    # middle covers it as the lips meet, as closed lips look. (The interior shows only past
    # the rest gap, the seam only below it.)
    if opening is not None:
        rest = style.rest_gap * scale
        sealed = ((rest - gap_now) / rest.clamp_min(1.0)).clamp(0, 1)
        cover = ((sealed - 0.5) / 0.4).clamp(0, 1)[:, None, None]  # only as they meet
        seam = 0.95 * cover * opening(origin)
        dark = 1 - 0.45 * torch.exp(-(((y - (top + bottom) / 2) / 0.9) ** 2))
        seam_rgb = style.lips.to(device) * dark[..., None]
        rgb = torch.lerp(rgb, seam_rgb, (seam > alpha).float()[..., None])
        alpha = torch.maximum(alpha, seam)
    alpha = alpha.unsqueeze(-1)
    return torch.cat([rgb.clamp(0, 255), alpha], -1).contiguous(), origin


def shows_opening(
    flow: torch.Tensor,
    size: int,
    upper: torch.Tensor,
    lower: torch.Tensor,
    tile: tuple[int, int],
) -> Callable[[torch.Tensor], torch.Tensor]:
    """``origin [T, 2] -> [T, th, tw]``: how much each pixel of a tile at ``origin`` samples
    the portrait's mouth opening (between its inner lips at rest), 0..1 with a pixel of
    anti-aliasing, under the coarse backward ``flow [T, h, w, 2]`` (pixels; ``warp2d``'s
    convention: output pixel p samples p + flow(p), the flow interpolated bilinearly between
    nodes spread evenly over the ``size`` x ``size`` crop). ``upper``/``lower`` ``[n, 2]``: the
    rest inner lips, corner to corner."""
    t = flow.shape[0]
    th, tw = tile
    coarse = flow.permute(0, 3, 1, 2).float()

    def opening(origin: torch.Tensor) -> torch.Tensor:
        device = flow.device
        ys = origin[:, 0, None].float() + torch.arange(th, device=device)  # [T, th]
        xs = origin[:, 1, None].float() + torch.arange(tw, device=device)  # [T, tw]
        norm_x = (2 * xs / (size - 1) - 1)[:, None, :].expand(t, th, tw)
        norm_y = (2 * ys / (size - 1) - 1)[:, :, None].expand(t, th, tw)
        where = torch.stack([norm_x, norm_y], -1)
        f = torch.nn.functional.grid_sample(coarse, where, mode="bilinear",
                                            padding_mode="border", align_corners=True)
        src_x = xs[:, None, :] + f[:, 0]
        src_y = ys[:, :, None] + f[:, 1]
        flat_x = src_x.reshape(t, -1)
        top = _interp(flat_x, upper[None, :, 0].expand(t, -1), upper[None, :, 1].expand(t, -1))
        bottom = _interp(flat_x, lower[None, :, 0].expand(t, -1), lower[None, :, 1].expand(t, -1))
        top, bottom = top.reshape(t, th, tw), bottom.reshape(t, th, tw)
        left = torch.minimum(upper[0, 0], lower[0, 0])
        right = torch.maximum(upper[-1, 0], lower[-1, 0])
        inside = ((src_y - top) + 0.5).clamp(0, 1) * ((bottom - src_y) + 0.5).clamp(0, 1)
        return inside * ((src_x - left) * (right - src_x) > 0).float()

    return opening
