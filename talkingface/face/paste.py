"""Paste-back: rendered aligned-crop frames composited into the whole portrait.

A renderer that animates an aligned square crop of the face can put every frame back into the
portrait, so the video has the picture's own size and framing:

- The output canvas is the portrait itself, scaled down (area filter) when its longer side is
  over ``max_side`` and trimmed by one row/column where a side is odd (H.264 in yuv420p needs
  even sizes). Pixels keep their values otherwise.
- The renderer gives the crop's blending weight per crop pixel (1 where it changes pixels,
  feathered to 0 before the crop border); outside it the frame is the portrait, bit for bit,
  and only the box the weight covers is warped and blended per frame.

Everything here is per frame and independent of the other frames, so streaming equals batch.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch


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
    """

    background: np.ndarray
    box: tuple[int, int, int, int]
    to_crop: np.ndarray
    weight: np.ndarray

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


def build_paste_back(
    pixels: np.ndarray, crop_matrix: np.ndarray, crop_weight: np.ndarray, max_side: int
) -> PasteBack:
    """Precompute the composite of one portrait's crop frames into the portrait.

    Args:
        pixels: uint8 ``[H, W, 3]`` the portrait the crop was cut from.
        crop_matrix: float64 ``[2, 3]`` portrait pixels -> crop pixels (``FaceCrop.matrix``).
        crop_weight: float32 ``[s, s]`` share of the rendered crop in the composite, per crop
            pixel (1 where the renderer changes pixels, falling to 0 towards the crop border).
        max_side: longest side of the output frames (see :func:`output_canvas`).
    """
    import cv2

    canvas, to_portrait = output_canvas(pixels, max_side)
    # canvas -> crop: the crop matrix after the canvas -> portrait map.
    to_crop = crop_matrix[:, :2] @ to_portrait
    to_crop = np.concatenate([to_crop[:, :2], (to_crop[:, 2] + crop_matrix[:, 2])[:, None]], 1)
    h, w = canvas.shape[:2]
    weight = cv2.warpAffine(
        np.ascontiguousarray(crop_weight, dtype=np.float32), to_crop, (w, h),
        flags=cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP,
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
    return PasteBack(background=canvas, box=box, to_crop=local,
                     weight=np.ascontiguousarray(weight[y0:y1, x0:x1]))
