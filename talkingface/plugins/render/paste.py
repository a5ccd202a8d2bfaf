"""Paste-back for the ``meshwarp`` renderer: aligned-crop frames composited into the portrait.

The renderer animates an aligned square crop of the face. With ``paste_back`` on, every frame
is put back into the whole portrait, so the video has the picture's own size and framing:

- The output canvas is the portrait itself, scaled down (area filter) when its longer side is
  over ``max_side`` and trimmed by one row/column where a side is odd (H.264 in yuv420p needs
  even sizes). Pixels keep their values otherwise.
- The crop's backward flow is faded to exactly zero in a band along the crop's border
  (:attr:`PasteBack.flow_gain`). The meshwarp rig anchors its own flow to zero just outside the
  crop, but the head's influence is squeezed into the last few pixels there; faded over a wider
  band, the still band is where the crop is feathered into the portrait, so the feather blends
  two renditions of the same still pixels (no double edges, no seam).
- The feathered weight is 1 wherever the flow can move a pixel (head weight, any expression
  basis) and falls to 0 across the still band; outside it the frame is the portrait, bit for
  bit, and only the box the weight covers is warped and blended per frame.

Everything here is per frame and independent of the other frames, so streaming equals batch.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from talkingface.plugins.render.mesh import FaceRig

# Band widths along the crop border, in pixels of a 512 crop (scaled with the crop size).
_FEATHER_PX = 24.0  # the ramp of the blending weight
_FLOW_RAMP_PX = 64.0  # inside the still band, the flow fades back in over this width


def output_canvas(pixels: np.ndarray, max_side: int) -> tuple[np.ndarray, np.ndarray]:
    """The portrait as output frames: scaled so the longer side is at most ``max_side``, with
    even width and height.

    Args:
        pixels: uint8 ``[H, W, 3]`` the portrait.
        max_side: the longest side allowed (pixels, >= 2).

    Returns:
        ``(canvas, to_portrait)``: uint8 ``[H', W', 3]`` C-contiguous, and the float64
        ``[2, 3]`` affine map from canvas pixel coordinates to portrait pixel coordinates.
    """
    import cv2

    h, w = pixels.shape[:2]
    scale = min(1.0, max_side / max(h, w))
    to_portrait = np.array([[1.0, 0.0, 0.0], [0.0, 1.0, 0.0]])
    canvas = pixels
    if scale < 1.0:
        nw, nh = max(2, round(w * scale)), max(2, round(h * scale))
        canvas = cv2.resize(pixels, (nw, nh), interpolation=cv2.INTER_AREA)
        sx, sy = w / nw, h / nh
        # Pixel centres line up: portrait x + 0.5 = (canvas x + 0.5) * sx.
        to_portrait = np.array([[sx, 0.0, 0.5 * sx - 0.5], [0.0, sy, 0.5 * sy - 0.5]])
    ch, cw = canvas.shape[:2]
    # Odd sides lose their last row / column: every other pixel keeps its value.
    return np.ascontiguousarray(canvas[: ch - ch % 2, : cw - cw % 2]), to_portrait


@dataclass
class PasteBack:
    """Everything the per-frame composite needs, computed once per portrait.

    Attributes:
        background: uint8 ``[H, W, 3]`` the output canvas (the portrait, see
            :func:`output_canvas`).
        box: ``(y0, y1, x0, x1)`` the part of the canvas that rendered crops can change.
        to_crop: float64 ``[2, 3]`` affine map from canvas pixels inside ``box`` (box-local
            coordinates) to crop pixels.
        weight: float32 ``[y1 - y0, x1 - x0]`` share of the rendered crop in the composite.
        flow_gain: float32 ``[grid, grid]`` multiplier of the crop's backward flow: 0 in the
            band along the crop border where the crop is feathered into the canvas.
    """

    background: np.ndarray
    box: tuple[int, int, int, int]
    to_crop: np.ndarray
    weight: np.ndarray
    flow_gain: torch.Tensor

    def __post_init__(self) -> None:
        y0, y1, x0, x1 = self.box
        self._box_background = np.ascontiguousarray(self.background[y0:y1, x0:x1])
        self._rest = np.ascontiguousarray(1.0 - self.weight, dtype=np.float32)

    @property
    def size(self) -> tuple[int, int]:
        """``(H, W)`` of the output frames."""
        return int(self.background.shape[0]), int(self.background.shape[1])

    @property
    def enlargement(self) -> float:
        """Output pixels per crop pixel (> 1: the rendered face is enlarged when pasted)."""
        return float(1.0 / np.sqrt(abs(np.linalg.det(self.to_crop[:, :2]))))

    def composite(self, crops: torch.Tensor, out: torch.Tensor | None = None) -> torch.Tensor:
        """Rendered crops ``uint8 [T, s, s, 3]`` -> frames ``uint8 [T, H, W, 3]`` (into ``out``
        when given)."""
        import cv2

        t = crops.shape[0]
        if out is None:
            out = torch.empty((t, *self.size, 3), dtype=torch.uint8)
        out.copy_(torch.from_numpy(self.background).expand(t, -1, -1, -1))
        y0, y1, x0, x1 = self.box
        if y1 <= y0 or x1 <= x0:
            return out
        background, weight, rest = self._box_background, self.weight, self._rest
        target = out.numpy()
        for i, crop in enumerate(crops.detach().cpu().numpy()):
            warped = cv2.warpAffine(
                np.ascontiguousarray(crop), self.to_crop, (x1 - x0, y1 - y0),
                flags=cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP, borderMode=cv2.BORDER_REPLICATE,
            )  # fmt: skip
            target[i, y0:y1, x0:x1] = cv2.blendLinear(warped, background, weight, rest)
        return out


def _smoothstep(t: np.ndarray) -> np.ndarray:
    t = np.clip(t, 0.0, 1.0)
    return t * t * (3.0 - 2.0 * t)


def build_paste_back(
    pixels: np.ndarray, crop_matrix: np.ndarray, rig: FaceRig, max_side: int
) -> PasteBack:
    """Precompute the composite of one portrait's crop frames into the portrait.

    Args:
        pixels: uint8 ``[H, W, 3]`` the portrait the crop was cut from.
        crop_matrix: float64 ``[2, 3]`` portrait pixels -> crop pixels (``FaceCrop.matrix``).
        rig: the crop's rig (its size, grid and which nodes can move).
        max_side: longest side of the output frames.
    """
    import cv2

    size, grid, spacing = rig.size, rig.grid, rig.spacing
    k = size / 512.0
    canvas, to_portrait = output_canvas(pixels, max_side)
    # canvas -> crop: the crop matrix after the canvas -> portrait map.
    to_crop = crop_matrix[:, :2] @ to_portrait
    to_crop = np.concatenate([to_crop[:, :2], (to_crop[:, 2] + crop_matrix[:, 2])[:, None]], 1)

    # A pixel's flow is bilinear in the four nodes of its grid cell, so it can move only within
    # sqrt(2) cells of a node that moves (plus half a pixel for the rounding below).
    reach = 1.5 * spacing + 1.0
    feather = _FEATHER_PX * k
    # Flow fades to 0 over [still, still + ramp] from the crop border; the still band holds the
    # reach and the feather, so the feather ends at the crop border.
    still = reach + feather
    axis = np.arange(grid) * spacing
    edge = np.minimum(axis, size - 1 - axis)
    dist = np.minimum(edge[:, None], edge[None, :])  # [grid, grid] to the nearest crop border
    gain = _smoothstep((dist - still) / (_FLOW_RAMP_PX * k))

    # Nodes whose flow can be non-zero: carried by the head or by any expression basis.
    features = rig.grid_features.detach().cpu().numpy()
    movable = (features[:, 3] > 0) | (np.abs(features[:, 4:]) > 0).any(1)
    movable = movable.reshape(grid, grid) & (gain > 0)
    # The crop's weight: 1 within reach of a moving node, then down to 0 over the feather (a
    # union of discs around the nodes: a smooth outline, not the staircase of the cells).
    nodes = np.ones((size, size), np.uint8)
    iy, ix = np.nonzero(movable)
    nodes[np.rint(iy * spacing).astype(int), np.rint(ix * spacing).astype(int)] = 0
    to_node = cv2.distanceTransform(nodes, cv2.DIST_L2, cv2.DIST_MASK_PRECISE)
    crop_weight = (1.0 - _smoothstep((to_node - reach) / max(feather, 1.0))).astype(np.float32)

    h, w = canvas.shape[:2]
    weight = cv2.warpAffine(
        crop_weight, to_crop, (w, h), flags=cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP,
        borderMode=cv2.BORDER_CONSTANT, borderValue=0.0,
    )  # fmt: skip
    weight[weight < 1e-3] = 0.0  # interpolation crumbs: those pixels stay the portrait's
    ys, xs = np.nonzero(weight > 0)
    if ys.size == 0:
        box = (0, 0, 0, 0)
    else:
        box = (int(ys.min()), int(ys.max()) + 1, int(xs.min()), int(xs.max()) + 1)
    y0, y1, x0, x1 = box
    local = to_crop.copy()
    local[:, 2] += local[:, :2] @ np.array([x0, y0], dtype=np.float64)
    return PasteBack(
        background=canvas,
        box=box,
        to_crop=local,
        weight=np.ascontiguousarray(weight[y0:y1, x0:x1]),
        flow_gain=torch.from_numpy(gain.astype(np.float32)),
    )
