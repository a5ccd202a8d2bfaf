"""Face analysis for renderers and metrics: MediaPipe face-mesh landmarks, aligned crops, measures.

Landmarks are MediaPipe's 478-point face mesh with iris refinement. "Left" and "right" in this
module mean as seen in the image (the viewer's left), so ``LEFT_EYE`` is the subject's right eye;
MediaPipe's own ``FACEMESH_LEFT_*`` names use the subject's side, the opposite.
"""

from __future__ import annotations

import contextlib
import math
import os
import sys
import warnings
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch

from talkingface.pipeline.contracts import Portrait
from talkingface.pipeline.errors import InputError

NUM_LANDMARKS = 478

# Named landmark groups. Closed contours are listed in drawing order around the loop.
LIPS_OUTER: tuple[int, ...] = (
    61, 146, 91, 181, 84, 17, 314, 405, 321, 375,
    291, 409, 270, 269, 267, 0, 37, 39, 40, 185,
)  # fmt: skip
LIPS_INNER: tuple[int, ...] = (
    78, 95, 88, 178, 87, 14, 317, 402, 318, 324,
    308, 415, 310, 311, 312, 13, 82, 81, 80, 191,
)  # fmt: skip
LEFT_EYE: tuple[int, ...] = (
    33, 7, 163, 144, 145, 153, 154, 155, 133, 173, 157, 158, 159, 160, 161, 246,
)  # fmt: skip
RIGHT_EYE: tuple[int, ...] = (
    263, 249, 390, 373, 374, 380, 381, 382, 362, 398, 384, 385, 386, 387, 388, 466,
)  # fmt: skip
LEFT_IRIS: tuple[int, ...] = (468, 469, 470, 471, 472)
"""Centre first, then the four rim points."""
RIGHT_IRIS: tuple[int, ...] = (473, 474, 475, 476, 477)
"""Centre first, then the four rim points."""
LEFT_BROW: tuple[int, ...] = (70, 63, 105, 66, 107, 55, 65, 52, 53, 46)
"""Lower edge from the outer end inwards, then the upper edge back out."""
RIGHT_BROW: tuple[int, ...] = (300, 293, 334, 296, 336, 285, 295, 282, 283, 276)
"""Lower edge from the outer end inwards, then the upper edge back out."""
FACE_OVAL: tuple[int, ...] = (
    10, 338, 297, 332, 284, 251, 389, 356, 454, 323, 361, 288, 397, 365, 379, 378, 400, 377,
    152, 148, 176, 149, 150, 136, 172, 58, 132, 93, 234, 127, 162, 21, 54, 103, 67, 109,
)  # fmt: skip
"""From the top of the forehead (10) clockwise as seen in the image, through the chin (152)."""
JAW: tuple[int, ...] = (
    234, 93, 132, 58, 172, 136, 150, 149, 176, 148, 152,
    377, 400, 378, 379, 365, 397, 288, 361, 323, 454,
)  # fmt: skip
"""The lower face oval, from the left cheek (234) through the chin (152) to the right cheek."""
NOSE: tuple[int, ...] = (168, 6, 197, 195, 5, 4, 1, 19, 94, 2, 98, 97, 326, 327, 48, 278, 64, 294)
"""The bridge from between the eyes (168) to the tip (1) and base (2), then the nostril wings."""

_FOREHEAD, _CHIN = 10, 152
_LEFT_CHEEK, _RIGHT_CHEEK = 234, 454
_INNER_LIP_PAIRS = ((13, 14), (82, 87), (312, 317))
# (upper lid, lower lid, outer corner, inner corner) per eye, image-left eye first.
_EYE_LIDS = ((159, 145, 33, 133), (386, 374, 263, 362))

_ASSETS = Path(__file__).resolve().parents[2] / "assets"


@dataclass(frozen=True)
class FaceLandmarks:
    """One face's landmarks.

    Attributes:
        points: float32 ``[478, 3]``: x, y in pixels of the analysed image; z in pixels too
            (MediaPipe's relative depth scaled by the image width; smaller = closer to camera).
        image_size: ``(H, W)`` of the analysed image.
        score: detection confidence, or 1.0 where the detector gives none.
    """

    points: torch.Tensor
    image_size: tuple[int, int]
    score: float = 1.0

    def box(self) -> tuple[float, float, float, float]:
        """``(x0, y0, x1, y1)`` bounding box of the landmarks, in pixels."""
        # numpy: torch's threaded reductions cost milliseconds on a busy CPU for 478 points.
        xy = self.points[:, :2].detach().cpu().numpy()
        x0, y0 = xy.min(axis=0).tolist()
        x1, y1 = xy.max(axis=0).tolist()
        return x0, y0, x1, y1

    @property
    def size(self) -> float:
        """Larger side of :meth:`box`, in pixels: how big the face is in the image."""
        x0, y0, x1, y1 = self.box()
        return max(x1 - x0, y1 - y0)


@dataclass(frozen=True)
class FaceCrop:
    """A face cut out of an image by :func:`align_crop`.

    Attributes:
        image: uint8 ``[size, size, 3]`` the aligned crop.
        matrix: float64 ``[2, 3]`` affine map from original-image pixel coordinates to crop
            pixel coordinates (``crop_xy = matrix[:, :2] @ xy + matrix[:, 2]``).
        landmarks: the face's landmarks in crop coordinates (z scaled like x and y).
        original_size: ``(H, W)`` of the image the crop was cut from.
    """

    image: torch.Tensor
    matrix: torch.Tensor
    landmarks: FaceLandmarks
    original_size: tuple[int, int]

    @property
    def size(self) -> int:
        return int(self.image.shape[0])


@contextlib.contextmanager
def _quiet_native_stderr():
    """Silence what MediaPipe's C++ side (glog, absl, TFLite) writes to fd 2 while it loads.

    Its log lines are written before logging is configured, so env vars and absl verbosity do
    not reach them; only redirecting the file descriptor does. Set TALKINGFACE_MEDIAPIPE_LOGS=1
    to see them when debugging.
    """
    if os.environ.get("TALKINGFACE_MEDIAPIPE_LOGS"):
        yield
        return
    try:
        saved = os.dup(2)
    except OSError:  # no usable stderr (embedded interpreters): nothing to silence
        yield
        return
    sys.stderr.flush()
    devnull = os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(devnull, 2)
        yield
    finally:
        sys.stderr.flush()
        os.dup2(saved, 2)
        os.close(saved)
        os.close(devnull)


def _import_mediapipe():
    os.environ.setdefault("GLOG_minloglevel", "2")
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    with _quiet_native_stderr():
        import mediapipe as mp

        with contextlib.suppress(ImportError):
            from absl import logging as absl_logging

            absl_logging.set_verbosity(absl_logging.ERROR)
    return mp


def _process(graph, image: np.ndarray):
    # Some calculators log one-off warnings on the first face they see (e.g. in a non-square
    # image), so every call is quieted, not just graph construction.
    with _quiet_native_stderr():
        return graph.process(image)


def _as_rgb_uint8(pixels: Any) -> np.ndarray:
    """``[H, W, 3]`` uint8 RGB as a C-contiguous numpy array (float input in 0..1 is scaled)."""
    if isinstance(pixels, Portrait):
        pixels = pixels.pixels
    if isinstance(pixels, torch.Tensor):
        pixels = pixels.detach().cpu().numpy()
    if not isinstance(pixels, np.ndarray):
        raise InputError(
            f"face analysis takes an image array, got {type(pixels).__name__}: "
            "pass a uint8 [H, W, 3] RGB torch.Tensor or numpy array"
        )
    if pixels.ndim != 3 or pixels.shape[-1] != 3:
        raise InputError(
            f"face analysis takes uint8 [H, W, 3] RGB pixels, got shape {tuple(pixels.shape)}: "
            "load it with talkingface.pipeline.media.load_image, which converts RGBA and "
            "grayscale to RGB"
        )
    if pixels.dtype != np.uint8:
        if not np.issubdtype(pixels.dtype, np.floating):
            raise InputError(
                f"face analysis takes uint8 RGB pixels (or float in 0..1), got {pixels.dtype}"
            )
        pixels = (np.clip(pixels, 0.0, 1.0) * 255.0 + 0.5).astype(np.uint8)
    if min(pixels.shape[:2]) < 8:
        raise InputError(f"the image is {pixels.shape[1]}x{pixels.shape[0]} pixels: too small")
    return np.ascontiguousarray(pixels)


def _box_iou(a: tuple[float, ...], b: tuple[float, ...]) -> float:
    ix = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    iy = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = ix * iy
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return inter / union if union > 0 else 0.0


def _centre_inside(inner: tuple[float, ...], outer: tuple[float, ...]) -> bool:
    cx, cy = (inner[0] + inner[2]) / 2, (inner[1] + inner[3]) / 2
    return outer[0] <= cx <= outer[2] and outer[1] <= cy <= outer[3]


class FaceAnalyzer:
    """Finds faces and their 478 landmarks with MediaPipe's face mesh (models ship in its wheel).

    The mesh's own detector only sees faces that fill a good part of the image, so faces it
    misses are looked for with MediaPipe's full-range face detector and meshed on a crop around
    each box. Cheap to construct; the MediaPipe graphs are built on first use (about a second).
    Not thread-safe: use one analyzer per thread.

    Args:
        max_faces: the most faces reported by :meth:`detect`.
        static: treat every call as an unrelated photo (True), or as consecutive video frames
            (False: the mesh tracks the face from the previous call, faster and steadier).
        min_face_px: :meth:`analyze` refuses faces smaller than this (larger box side, pixels).
    """

    # Crops around detector boxes are meshed at this size, with the face about half of it.
    _CROP_PX = 384
    _CROP_CONTEXT = 2.0
    # Tile side for the detector scan of big images: a 48 px face becomes 18 px at 192 px.
    _TILE_PX = 512

    def __init__(self, max_faces: int = 4, static: bool = True, min_face_px: int = 48):
        if max_faces < 1:
            raise ValueError(f"max_faces must be at least 1, got {max_faces}")
        self.max_faces = max_faces
        self.static = static
        self.min_face_px = min_face_px
        self._mesh = None
        self._crop_mesh = None
        self._detector = None

    # MediaPipe graphs, built lazily -------------------------------------------------------
    def _get_mesh(self):
        if self._mesh is None:
            mp = _import_mediapipe()
            with _quiet_native_stderr():
                self._mesh = mp.solutions.face_mesh.FaceMesh(
                    static_image_mode=self.static,
                    max_num_faces=self.max_faces,
                    refine_landmarks=True,
                    min_detection_confidence=0.5,
                    min_tracking_confidence=0.5,
                )
        return self._mesh

    def _get_crop_mesh(self):
        if self._crop_mesh is None:
            mp = _import_mediapipe()
            with _quiet_native_stderr():
                self._crop_mesh = mp.solutions.face_mesh.FaceMesh(
                    static_image_mode=True,
                    max_num_faces=1,
                    refine_landmarks=True,
                    min_detection_confidence=0.3,
                )
        return self._crop_mesh

    def _get_detector(self):
        if self._detector is None:
            mp = _import_mediapipe()
            with _quiet_native_stderr():
                # model_selection=1: the full-range model, for small and distant faces.
                self._detector = mp.solutions.face_detection.FaceDetection(
                    model_selection=1, min_detection_confidence=0.5
                )
        return self._detector

    def close(self) -> None:
        """Release the MediaPipe graphs (they are rebuilt if the analyzer is used again)."""
        for graph in (self._mesh, self._crop_mesh, self._detector):
            if graph is not None:
                graph.close()
        self._mesh = self._crop_mesh = self._detector = None

    def __enter__(self) -> FaceAnalyzer:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    # Detection ------------------------------------------------------------------------------
    def detect(self, pixels: Any) -> list[FaceLandmarks]:
        """All faces in an image, largest first (at most ``max_faces``).

        Args:
            pixels: uint8 ``[H, W, 3]`` RGB (torch or numpy; float in 0..1 is accepted too).
                Convert RGBA and grayscale images to RGB first (the portrait loader does).

        Returns:
            One :class:`FaceLandmarks` per face, in the pixel coordinates of ``pixels``.
        """
        image = _as_rgb_uint8(pixels)
        h, w = image.shape[:2]
        faces = self._mesh_image(image)
        if self.static and len(faces) < self.max_faces:
            # The mesh's short-range detector misses small faces: ask the full-range detector
            # and mesh a crop around every box the mesh has not already covered. The detector
            # sees the image at 192 px, so in big images it looks tile by tile.
            boxes = self._detector_boxes(image)
            if not boxes and not faces and max(h, w) > self._TILE_PX * 1.25:
                boxes = self._tiled_detector_boxes(image)
            for box, score in boxes:
                if any(_centre_inside(box, f.box()) for f in faces):
                    continue
                face = self._mesh_around(image, box, score)
                if face is not None and not any(_centre_inside(face.box(), f.box()) for f in faces):
                    faces.append(face)
        faces.sort(key=lambda f: f.size, reverse=True)
        return [replace(f, image_size=(h, w)) for f in faces[: self.max_faces]]

    def _mesh_image(self, image: np.ndarray) -> list[FaceLandmarks]:
        h, w = image.shape[:2]
        result = _process(self._get_mesh(), image)
        faces = []
        for face in result.multi_face_landmarks or ():
            pts = np.array([(p.x, p.y, p.z) for p in face.landmark], dtype=np.float32)
            pts *= np.array([w, h, w], dtype=np.float32)
            faces.append(FaceLandmarks(torch.from_numpy(pts), (h, w), 1.0))
        return faces

    def _detector_boxes(self, image: np.ndarray) -> list[tuple[tuple[float, ...], float]]:
        h, w = image.shape[:2]
        result = _process(self._get_detector(), image)
        boxes = []
        for det in result.detections or ():
            rb = det.location_data.relative_bounding_box
            box = (rb.xmin * w, rb.ymin * h, (rb.xmin + rb.width) * w, (rb.ymin + rb.height) * h)
            boxes.append((box, float(det.score[0])))
        return boxes

    def _tiled_detector_boxes(self, image: np.ndarray) -> list[tuple[tuple[float, ...], float]]:
        h, w = image.shape[:2]
        tile, stride = self._TILE_PX, self._TILE_PX * 3 // 4
        boxes: list[tuple[tuple[float, ...], float]] = []
        for y in range(0, max(h - tile, 0) + stride, stride):
            for x in range(0, max(w - tile, 0) + stride, stride):
                y0, x0 = min(y, max(h - tile, 0)), min(x, max(w - tile, 0))
                for box, score in self._detector_boxes(image[y0 : y0 + tile, x0 : x0 + tile]):
                    box = (box[0] + x0, box[1] + y0, box[2] + x0, box[3] + y0)
                    # Overlapping tiles see the same face twice: keep the surer detection.
                    same = [i for i, (b, _) in enumerate(boxes) if _box_iou(b, box) > 0.3]
                    if not same:
                        boxes.append((box, score))
                    elif score > boxes[same[0]][1]:
                        boxes[same[0]] = (box, score)
        return sorted(boxes, key=lambda b: -b[1])

    def _mesh_around(
        self, image: np.ndarray, box: tuple[float, ...], score: float
    ) -> FaceLandmarks | None:
        """Mesh a square crop around a detector box and map the points back to ``image``."""
        import cv2

        cx, cy = (box[0] + box[2]) / 2, (box[1] + box[3]) / 2
        side = max(box[2] - box[0], box[3] - box[1]) * self._CROP_CONTEXT
        scale = self._CROP_PX / side
        half = self._CROP_PX / 2
        to_crop = np.array([[scale, 0.0, half - scale * cx], [0.0, scale, half - scale * cy]])
        crop = cv2.warpAffine(
            image, to_crop, (self._CROP_PX, self._CROP_PX),
            flags=cv2.INTER_AREA if scale < 1 else cv2.INTER_LINEAR,
            borderMode=cv2.BORDER_REPLICATE,
        )  # fmt: skip
        result = _process(self._get_crop_mesh(), crop)
        if not result.multi_face_landmarks:
            return None
        pts = np.array(
            [(p.x, p.y, p.z) for p in result.multi_face_landmarks[0].landmark], dtype=np.float64
        )
        pts *= self._CROP_PX
        pts[:, 0] = (pts[:, 0] - to_crop[0, 2]) / scale
        pts[:, 1] = (pts[:, 1] - to_crop[1, 2]) / scale
        pts[:, 2] /= scale
        return FaceLandmarks(torch.from_numpy(pts.astype(np.float32)), image.shape[:2], score)

    def analyze(
        self, pixels: Any, *, several: str = "largest", source: str | None = None
    ) -> FaceLandmarks:
        """The one face of a portrait.

        Args:
            pixels: uint8 ``[H, W, 3]`` RGB, or a :class:`Portrait` (its source names it in
                messages).
            several: what to do when there is more than one face: ``"largest"`` warns and
                returns the largest; ``"error"`` raises InputError.
            source: how to name the image in messages (default: the portrait's source).

        Raises:
            InputError: no face, a face smaller than ``min_face_px``, or several faces with
                ``several="error"``.
        """
        if several not in ("largest", "error"):
            raise ValueError(f"several must be 'largest' or 'error', got {several!r}")
        if source is None:
            source = pixels.source if isinstance(pixels, Portrait) else "the image"
        faces = self.detect(pixels)
        if not faces:
            raise InputError(
                f"no face found in {source}: use a photo where one face is clearly visible, "
                "upright, facing the camera and not covered (a head-and-shoulders portrait works "
                "best)"
            )
        largest = faces[0]
        if largest.size < self.min_face_px:
            raise InputError(
                f"the face in {source} is too small ({largest.size:.0f} px, the minimum is "
                f"{self.min_face_px} px): use a photo where the face is larger, or crop the "
                "image around the face"
            )
        big = [f for f in faces if f.size >= self.min_face_px]
        if len(big) > 1:
            count = f"{len(big)}{'+' if len(big) == self.max_faces else ''}"
            if several == "error":
                raise InputError(
                    f"{count} faces found in {source}: use a photo with one face, or crop the "
                    "image to the face you want to animate"
                )
            warnings.warn(
                f"{count} faces found in {source}; animating the largest "
                f"({largest.size:.0f} px). Crop the image to choose another one.",
                stacklevel=2,
            )
        return largest


# Alignment ------------------------------------------------------------------------------------
def align_crop(
    pixels: Any,
    landmarks: FaceLandmarks,
    size: int = 512,
    face_scale: float = 2.0,
    *,
    cubic: bool = False,
) -> FaceCrop:
    """Cut out a square, upright crop of the face.

    A similarity transform: rotated so the eye line is level, scaled so the face (the larger of
    forehead-to-chin and cheek-to-cheek) spans ``size / face_scale`` pixels, and centred a
    little above the face centre so hair and chin both fit. Outside the image the border pixels
    are repeated.

    Args:
        pixels: uint8 ``[H, W, 3]`` RGB, the image ``landmarks`` were found in.
        landmarks: the face, in ``pixels``' coordinates.
        size: side of the crop in pixels.
        face_scale: crop side / face size (2.0 leaves room for hair, neck and background).
        cubic: where the crop enlarges the image, interpolate bicubically instead of
            bilinearly (sharper; what is pasted back then matches the original better).

    Returns:
        A :class:`FaceCrop` with the ``[size, size, 3]`` image, the ``[2, 3]`` matrix and the
        landmarks in crop coordinates.
    """
    import cv2

    image = _as_rgb_uint8(pixels)
    # The geometry is a few hundred points: numpy float64, no torch thread-pool overhead.
    pts = landmarks.points.detach().cpu().numpy().astype(np.float64)
    eye_vec = pts[list(RIGHT_EYE), :2].mean(0) - pts[list(LEFT_EYE), :2].mean(0)
    angle = math.atan2(eye_vec[1], eye_vec[0])
    face_h = float(np.linalg.norm(pts[_CHIN] - pts[_FOREHEAD]))
    face_w = float(np.linalg.norm(pts[_RIGHT_CHEEK] - pts[_LEFT_CHEEK]))
    face_size = max(face_h, face_w, 1.0)
    scale = size / face_scale / face_size
    cos, sin = math.cos(-angle) * scale, math.sin(-angle) * scale
    rot = np.array([[cos, -sin], [sin, cos]])
    # Centre of the face in the rotated frame, then 10% of the face size towards the forehead.
    rotated = pts[:, :2] @ rot.T
    centre = (rotated.min(0) + rotated.max(0)) / 2
    centre[1] -= 0.1 * face_size * scale
    shift = size / 2 - centre
    matrix = np.concatenate([rot, shift[:, None]], axis=1)
    crop = cv2.warpAffine(
        image, matrix, (size, size),
        flags=cv2.INTER_AREA if scale < 1 else cv2.INTER_CUBIC if cubic else cv2.INTER_LINEAR,
        borderMode=cv2.BORDER_REPLICATE,
    )  # fmt: skip
    crop_pts = np.concatenate([rotated + shift, pts[:, 2:] * scale], axis=1)
    crop_landmarks = FaceLandmarks(
        torch.from_numpy(crop_pts.astype(np.float32)), (size, size), landmarks.score
    )
    return FaceCrop(
        torch.from_numpy(crop), torch.from_numpy(matrix), crop_landmarks, image.shape[:2]
    )


def crop_mask(size: int, feather: int = 16) -> torch.Tensor:
    """float32 ``[size, size]`` blending weight of a crop: 1 inside, ramping to 0 at the border."""
    ramp = torch.arange(size, dtype=torch.float32)
    ramp = torch.minimum(ramp, size - 1 - ramp) / max(feather, 1)
    ramp = ramp.clamp(0, 1)
    return ramp[:, None] * ramp[None, :]


def paste_back(
    original: Any, crop_frames: torch.Tensor, crop: FaceCrop, feather: int = 16
) -> torch.Tensor:
    """Warp rendered crops back into the original image, blended with a feathered border.

    Args:
        original: uint8 ``[H, W, 3]`` the image the crop was cut from.
        crop_frames: uint8 ``[T, size, size, 3]`` (or ``[size, size, 3]``) frames in crop
            coordinates.
        crop: the :class:`FaceCrop` from :func:`align_crop`.
        feather: width in crop pixels of the ramp from the crop to the original at its border.

    Returns:
        uint8 ``[T, H, W, 3]``.
    """
    import cv2

    base = _as_rgb_uint8(original)
    frames = crop_frames if crop_frames.ndim == 4 else crop_frames[None]
    if frames.shape[1:] != (crop.size, crop.size, 3):
        raise ValueError(
            f"crop_frames must be [T, {crop.size}, {crop.size}, 3], got {tuple(crop_frames.shape)}"
        )
    h, w = base.shape[:2]
    inverse = cv2.invertAffineTransform(crop.matrix.numpy())
    mask = cv2.warpAffine(
        crop_mask(crop.size, feather).numpy(), inverse, (w, h),
        flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT, borderValue=0.0,
    )  # fmt: skip
    # Only the pixels the crop covers need blending: work inside their bounding box.
    ys, xs = np.nonzero(mask > 0)
    out = np.repeat(base[None], frames.shape[0], axis=0)
    if ys.size == 0:
        return torch.from_numpy(out)
    y0, y1, x0, x1 = ys.min(), ys.max() + 1, xs.min(), xs.max() + 1
    inverse_local = inverse.copy()
    inverse_local[:, 2] -= (x0, y0)
    weight = np.ascontiguousarray(mask[y0:y1, x0:x1])
    background = np.ascontiguousarray(base[y0:y1, x0:x1])
    frames_np = frames.detach().cpu().numpy()
    if frames_np.dtype != np.uint8:
        raise ValueError(f"crop_frames must be uint8, got {frames_np.dtype}")
    for t in range(frames_np.shape[0]):
        warped = cv2.warpAffine(
            np.ascontiguousarray(frames_np[t]), inverse_local, (int(x1 - x0), int(y1 - y0)),
            flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE,
        )  # fmt: skip
        out[t, y0:y1, x0:x1] = cv2.blendLinear(warped, background, weight, 1.0 - weight)
    return torch.from_numpy(out)


# Measures ---------------------------------------------------------------------------------
def _check_points(points: torch.Tensor, fn: str) -> torch.Tensor:
    if not isinstance(points, torch.Tensor):
        points = torch.as_tensor(np.asarray(points))
    if points.ndim < 2 or points.shape[-2] != NUM_LANDMARKS or points.shape[-1] not in (2, 3):
        raise ValueError(f"{fn} takes landmarks [..., 478, 3], got {tuple(points.shape)}")
    return points if points.is_floating_point() else points.float()


def _dist(points: torch.Tensor, a: int, b: int) -> torch.Tensor:
    return torch.linalg.norm(points[..., a, :] - points[..., b, :], dim=-1)


def mouth_opening(points: torch.Tensor) -> torch.Tensor:
    """Inner-lip gap over face height, ``[..., 478, 3] -> [...]``.

    The gap is the mean distance of the inner-lip pairs 13/14, 82/87 and 312/317; the face
    height is landmark 10 (forehead) to 152 (chin). About 0 with closed lips, 0.1-0.3 open.
    """
    points = _check_points(points, "mouth_opening")
    gap = torch.stack([_dist(points, a, b) for a, b in _INNER_LIP_PAIRS], dim=-1).mean(-1)
    return gap / _dist(points, _FOREHEAD, _CHIN).clamp_min(1e-6)


def eye_openness(points: torch.Tensor) -> torch.Tensor:
    """Eyelid gap over eye width per eye, ``[..., 478, 3] -> [..., 2]`` (image-left eye first).

    Image-left eye: lids 159/145 over corners 33/133; image-right eye: 386/374 over 362/263.
    About 0.3 open, below 0.1 closed.
    """
    points = _check_points(points, "eye_openness")
    ratios = [
        _dist(points, up, down) / _dist(points, outer, inner).clamp_min(1e-6)
        for up, down, outer, inner in _EYE_LIDS
    ]
    return torch.stack(ratios, dim=-1)


def head_pose(points: torch.Tensor) -> torch.Tensor:
    """Head rotation from landmarks, ``[..., 478, 3] -> [..., 3]`` yaw, pitch, roll in radians.

    The face frame is built from the 3D landmarks: x along the outer eye corners (33 -> 263),
    y along chin -> forehead (152 -> 10), z their cross product (out of the face). Angles are
    ``R = Ry(yaw) Rx(-pitch) Rz(roll)`` in a camera frame with x right, y up, z to the viewer:
    yaw > 0 turns the nose to the image right, pitch > 0 tilts it up, roll > 0 turns the eye
    line counterclockwise as seen. Good for changes between frames (motion metrics); the
    absolute angles carry a few degrees of face-shape bias.
    """
    points = _check_points(points, "head_pose")
    if points.shape[-1] != 3:
        raise ValueError("head_pose needs 3D landmarks [..., 478, 3]")
    flip = torch.tensor([1.0, -1.0, -1.0], dtype=points.dtype, device=points.device)
    p = points * flip  # image (x right, y down, z away) -> camera (x right, y up, z to viewer)
    x_axis = torch.nn.functional.normalize(p[..., 263, :] - p[..., 33, :], dim=-1)
    up = p[..., _FOREHEAD, :] - p[..., _CHIN, :]
    y_axis = torch.nn.functional.normalize(
        up - (up * x_axis).sum(-1, keepdim=True) * x_axis, dim=-1
    )
    z_axis = torch.linalg.cross(x_axis, y_axis, dim=-1)
    yaw = torch.atan2(z_axis[..., 0], z_axis[..., 2])
    pitch = torch.asin(z_axis[..., 1].clamp(-1, 1))
    roll = torch.atan2(x_axis[..., 1], y_axis[..., 1])
    return torch.stack([yaw, pitch, roll], dim=-1)


# Built-in demo assets -----------------------------------------------------------------------
def demo_portrait_path() -> Path:
    """Path of the built-in synthetic demo portrait (``talkingface/assets/demo_portrait.png``)."""
    path = _ASSETS / "demo_portrait.png"
    if not path.is_file():
        raise InputError(
            f"the demo portrait is missing ({path}): reinstall talkingface, or give a portrait"
        )
    return path


def demo_portrait() -> Portrait:
    """The built-in synthetic demo portrait: uint8 ``[512, 512, 3]``, one frontal face."""
    from PIL import Image

    with Image.open(demo_portrait_path()) as img:
        pixels = np.asarray(img.convert("RGB")).copy()
    return Portrait(torch.from_numpy(pixels), source="demo portrait")


def demo_audio_path() -> Path:
    """Path of the built-in demo speech clip (``talkingface/assets/demo_speech.flac``)."""
    path = _ASSETS / "demo_speech.flac"
    if not path.is_file():
        raise InputError(
            f"the demo speech clip is missing ({path}): reinstall talkingface, or give an "
            "audio file"
        )
    return path
