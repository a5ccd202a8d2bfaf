"""Paste-back for the ``meshwarp`` renderer: the crop's blending weight and flow gain.

The generic composite lives in :mod:`talkingface.face.paste`; what is meshwarp's own is where
its warp can move pixels:

- The crop's backward flow is faded to exactly zero in a band along the crop's border
  (:attr:`MeshPaste.flow_gain`). The meshwarp rig anchors its own flow to zero just outside the
  crop, but the head's influence is squeezed into the last few pixels there; faded over a wider
  band, the still band is where the crop is feathered into the portrait, so the feather blends
  two renditions of the same still pixels (no double edges, no seam).
- The feathered weight is 1 wherever the flow can move a pixel (head weight, any expression
  basis) and falls to 0 across the still band.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from talkingface.face.paste import PasteBack, build_paste_back
from talkingface.plugins.render.mesh import FaceRig, smoothstep

# Band widths along the crop border, in pixels of a 512 crop (scaled with the crop size).
_FEATHER_PX = 24.0  # the ramp of the blending weight
_FLOW_RAMP_PX = 64.0  # inside the still band, the flow fades back in over this width


@dataclass
class MeshPaste:
    """A meshwarp portrait's paste-back: the composite and the flow gain it needs.

    Attributes:
        paste: the composite into the portrait.
        flow_gain: float32 ``[grid, grid]`` multiplier of the crop's backward flow: 0 in the
            band along the crop border where the crop is feathered into the canvas.
    """

    paste: PasteBack
    flow_gain: torch.Tensor


def build_mesh_paste(
    pixels: np.ndarray, crop_matrix: np.ndarray, rig: FaceRig, max_side: int
) -> MeshPaste:
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
    gain = smoothstep((dist - still) / (_FLOW_RAMP_PX * k))

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
    crop_weight = (1.0 - smoothstep((to_node - reach) / max(feather, 1.0))).astype(np.float32)

    paste = build_paste_back(pixels, crop_matrix, crop_weight, max_side)
    return MeshPaste(paste, torch.from_numpy(gain.astype(np.float32)))
