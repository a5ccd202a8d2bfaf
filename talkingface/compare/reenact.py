"""Self-reenactment scores: a real video's first frame animated (by its own motion, or by its
audio) and compared with the real frames, as in LivePortrait's and face-vid2vid's evaluations.

Pixels: PSNR and SSIM (and LPIPS when a local model exists; nothing is downloaded) of each
generated frame against the real frame at the same time, in the generated frames' geometry
(the real frame is cut with the renderer's own crop matrix when the renderer outputs the face
crop). Landmarks: the generated face's landmarks are mapped back to the real video's pixels
and compared with the real ones, normalised by the real face's inter-ocular distance (outer eye
corners): ``lmk_all`` as they are (head pose, placement and expression together), ``lmk_mouth``
and ``lmk_eyes`` after a similarity alignment on the points that do not move with the
expression (upper face outline and nose), so an audio-driven head that turns differently is
still judged on its lips and lids.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from talkingface.compare import metrics as M
from talkingface.face import landmarks as L

MOUTH_POINTS = tuple(sorted(set(L.LIPS_OUTER) | set(L.LIPS_INNER)))
EYE_POINTS = tuple(sorted(set(L.LEFT_EYE) | set(L.RIGHT_EYE)))
OUTER_EYE_CORNERS = (33, 263)
ANCHOR_POINTS = tuple(sorted((set(L.FACE_OVAL) - set(L.JAW)) | set(L.NOSE)))
"""Points that move with the head but not with the expression (upper face outline, nose):
what the shape errors are aligned on."""
VIDEO_MOTION = "video"
"""The motion source that follows a driving video (``motion=video motion.params.path=...``)."""
NO_LPIPS = "n/a (no local model)"


def drives_from_video(overrides) -> bool:
    """Whether a variant's overrides pick the ``video`` motion source."""
    return any(
        o.replace(" ", "") in (f"motion={VIDEO_MOTION}", f"motion.name={VIDEO_MOTION}")
        for o in overrides
    )


def sets_driver(overrides) -> bool:
    """Whether the overrides already name the driving video (``motion.params.path=...``)."""
    return any(o.replace(" ", "").startswith("motion.params.path=") for o in overrides)


@dataclass(frozen=True)
class Geometry:
    """How generated frames sit on the real video's frames: ``matrix`` maps real-video pixels
    to generated-frame pixels (``[2, 3]`` affine; identity when the renderer pastes back into
    the whole picture), ``size`` is the generated ``(H, W)``."""

    matrix: np.ndarray
    size: tuple[int, int]

    @staticmethod
    def of(result, generated_size: tuple[int, int], real_size: tuple[int, int]):
        """The geometry of a run's frames, or ``(None, why)`` when they cannot be placed."""
        if tuple(generated_size) == tuple(real_size):
            return Geometry(np.array([[1.0, 0, 0], [0, 1.0, 0]]), tuple(generated_size)), ""
        prepared = getattr(result, "prepared", None)
        crop = getattr(prepared, "crop", None)
        if crop is not None and tuple(generated_size) == (crop.size, crop.size):
            return Geometry(np.asarray(crop.matrix, dtype=np.float64), tuple(generated_size)), ""
        return None, (
            f"generated frames {tuple(generated_size)} are neither the real video's "
            f"size {tuple(real_size)} nor the renderer's face crop"
        )

    def to_real(self, points: np.ndarray) -> np.ndarray:
        """Generated-frame pixel coordinates ``[..., 2]`` -> real-video pixels."""
        a, b = self.matrix[:, :2], self.matrix[:, 2]
        return (points - b) @ np.linalg.inv(a).T

    def real_image(self, frame: torch.Tensor) -> torch.Tensor:
        """A real frame uint8 ``[H, W, 3]`` in the generated frames' geometry."""
        if self.is_identity(frame.shape[:2]):
            return frame
        import cv2

        h, w = self.size
        out = cv2.warpAffine(
            np.ascontiguousarray(frame.numpy()),
            self.matrix,
            (w, h),
            flags=cv2.INTER_AREA if self._scale() < 1 else cv2.INTER_LINEAR,
            borderMode=cv2.BORDER_REPLICATE,
        )
        return torch.from_numpy(out)

    def is_identity(self, real_size) -> bool:
        return tuple(real_size) == self.size and np.allclose(
            self.matrix, [[1.0, 0, 0], [0, 1.0, 0]]
        )

    def _scale(self) -> float:
        return float(math.sqrt(abs(np.linalg.det(self.matrix[:, :2]))))


def real_index(i: int, fps: float, real_fps: float) -> int:
    """The real frame shown at the time of generated frame ``i``."""
    return int(round(i * real_fps / fps))


def similarity_align(source: np.ndarray, target: np.ndarray, anchors=None) -> np.ndarray:
    """``source`` points ``[N, 2]`` moved by the similarity transform (rotation, uniform scale,
    translation) that best fits ``source[anchors]`` onto ``target[anchors]`` in least squares
    (Umeyama 1991; all points when ``anchors`` is None)."""
    idx = slice(None) if anchors is None else list(anchors)
    mu_s, mu_t = source[idx].mean(0), target[idx].mean(0)
    s, t = source[idx] - mu_s, target[idx] - mu_t
    cov = t.T @ s / len(s)
    u, d, vt = np.linalg.svd(cov)
    sign = np.ones(2)
    if np.linalg.det(u) * np.linalg.det(vt) < 0:
        sign[-1] = -1
    rot = u @ np.diag(sign) @ vt
    var = (s * s).sum() / len(s)
    scale = float((d * sign).sum() / var) if var > 0 else 1.0
    return scale * (source - mu_s) @ rot.T + mu_t


def landmark_errors(generated: np.ndarray, real: np.ndarray) -> dict[str, float]:
    """Landmark errors of one or more frames, each a fraction of the real inter-ocular distance
    (**lower is better**), averaged over the frames where both faces were found.

    Args:
        generated: ``[T, 478, 2]`` generated landmarks in real-video pixels (NaN: no face).
        real: ``[T, 478, 2]`` the real video's landmarks at the same times.

    Returns:
        ``{"lmk_all", "lmk_mouth", "lmk_eyes", "frames"}``: all points as placed; lip and eye
        points after a similarity alignment on :data:`ANCHOR_POINTS`; ``frames`` compared.
    """
    sums = {"lmk_all": [], "lmk_mouth": [], "lmk_eyes": []}
    for g, r in zip(generated, real, strict=True):
        if not (np.isfinite(g).all() and np.isfinite(r).all()):
            continue
        iod = float(np.linalg.norm(r[OUTER_EYE_CORNERS[0]] - r[OUTER_EYE_CORNERS[1]]))
        if iod <= 1e-6:
            continue
        sums["lmk_all"].append(float(np.linalg.norm(g - r, axis=-1).mean()) / iod)
        aligned = similarity_align(g, r, ANCHOR_POINTS)
        for key, idx in (("lmk_mouth", MOUTH_POINTS), ("lmk_eyes", EYE_POINTS)):
            err = np.linalg.norm(aligned[list(idx)] - r[list(idx)], axis=-1).mean()
            sums[key].append(float(err) / iod)
    out = {k: float(np.mean(v)) if v else math.nan for k, v in sums.items()}
    out["frames"] = float(len(sums["lmk_all"]))
    return out


def pixel_scores(pairs, lpips: Callable | None) -> dict[str, float]:
    """Mean PSNR (dB), SSIM and LPIPS over ``(generated, real)`` uint8 ``[H, W, 3]`` pairs."""
    psnr = [M.psnr(g.numpy(), r.numpy()) for g, r in pairs]
    ssim = [M.ssim(g.numpy(), r.numpy()) for g, r in pairs]
    finite = [v for v in psnr if math.isfinite(v)]
    out = {
        "psnr": float(np.mean(finite)) if finite else (math.inf if psnr else math.nan),
        "ssim": float(np.mean(ssim)) if ssim else math.nan,
        "lpips": math.nan,
    }
    if lpips is not None and pairs:
        out["lpips"] = float(np.mean([lpips(g, r) for g, r in pairs]))
    return out


_ALEXNET_CHECKPOINT = "alexnet-owt-7be5be79.pth"  # torchvision's ImageNet AlexNet weights


def local_lpips() -> tuple[Callable | None, str]:
    """An LPIPS (AlexNet) scorer built from files already on this machine, never downloaded:
    the ``lpips`` package (its linear heads ship in the wheel) and torchvision's AlexNet
    checkpoint in the torch hub cache. Returns ``(score(a, b) -> float, "")`` with uint8
    ``[H, W, 3]`` inputs (**lower is better**), or ``(None, reason)``."""
    try:
        import lpips
    except ImportError:
        return None, f"{NO_LPIPS}: the lpips package is not installed"
    checkpoint = Path(torch.hub.get_dir()) / "checkpoints" / _ALEXNET_CHECKPOINT
    if not checkpoint.exists():
        return None, f"{NO_LPIPS}: no AlexNet weights at {checkpoint}"
    # pnet_rand: build the backbone without fetching it; its weights come from the local file.
    model = lpips.LPIPS(net="alex", pretrained=True, pnet_rand=True, verbose=False).eval()
    state = torch.load(checkpoint, map_location="cpu", weights_only=True)
    backbone = model.net
    for n in range(1, backbone.N_slices + 1):
        for index, layer in getattr(backbone, f"slice{n}").named_children():
            for name, param in layer.named_parameters(recurse=False):
                param.data.copy_(state[f"features.{index}.{name}"])

    def score(a: torch.Tensor, b: torch.Tensor) -> float:
        x, y = (t.permute(2, 0, 1)[None].float() / 127.5 - 1.0 for t in (a, b))
        with torch.no_grad():
            return float(model(x, y).mean())

    return score, ""
