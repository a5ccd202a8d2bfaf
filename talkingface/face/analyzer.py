"""Finding faces: MediaPipe's face mesh (models ship in its wheel) plus its full-range detector
for small faces, as :class:`FaceAnalyzer`."""

from __future__ import annotations

import contextlib
import os
import sys
import warnings
from dataclasses import replace
from typing import Any

import numpy as np
import torch

from talkingface.face.landmarks import FaceLandmarks
from talkingface.pipeline.contracts import Portrait
from talkingface.pipeline.errors import InputError


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


def as_rgb_uint8(pixels: Any) -> np.ndarray:
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
            "load it with talkingface.io.load_image, which converts RGBA and "
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
        image = as_rgb_uint8(pixels)
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
