"""Motion from real video: a talking-head video -> a :class:`MotionTrack` (head pose and
expression coefficients per frame, in the semantic space renderers consume), with per-frame
confidence and the frames where no face was found marked.

    from talkingface.face.motion_track import extract_motion

    track = extract_motion("talk.mp4", fps=25)          # relative to the first face frame
    track.motion                                         # Motion [T, 6] pose, [T, 12] expression
    track.has_face, track.confidence                     # [T] each

The video is decoded and analysed frame by frame (memory holds one frame plus the landmarks),
each face is fitted against the rest face (:mod:`talkingface.face.motion_fit`), the per-frame
values are smoothed without lag (:mod:`talkingface.face.smoothing`) and resampled to ``fps``.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch

from talkingface.face.analyzer import FaceAnalyzer
from talkingface.face.landmarks import NUM_LANDMARKS, FaceLandmarks
from talkingface.face.motion_fit import (
    FIT_NAMES,
    MEASURES,
    MotionFitter,
    RestFace,
    neutral_change,
)
from talkingface.face.smoothing import SmoothingConfig, smooth_track, smoothing_config
from talkingface.pipeline.contracts import Frames, Motion
from talkingface.pipeline.errors import InputError

_FAST = ("jaw_open", "lip_press", "blink_l", "blink_r")
"""Coefficients smoothed with ``SmoothingConfig.fast_hz``: they move within 100-200 ms."""
_RESIDUAL_FLOOR = 0.04
"""Head-fit residual (rest face heights) at which the confidence reaches 0: the rigid points
no longer move together (a badly tracked or occluded face)."""


@dataclass(frozen=True)
class MotionTrack:
    """The motion of the face in a video, relative to its rest face.

    Attributes:
        motion: the track as a :class:`Motion` at ``motion.fps`` frames per second: pose
            ``[T, 6]`` (yaw, pitch, roll radians; tx, ty in rest face heights; scale relative
            to the rest face) and expression ``[T, 12]`` named by ``FIT_NAMES``. Frames without
            a face hold the nearest face frame's values (see ``has_face``), so a renderer can
            take the track as it is; a video with no face at all gives the rest pose.
        confidence: float32 ``[T]`` 0..1: the detector's score times how well the rigid points
            fit (0 where no face).
        has_face: bool ``[T]`` whether a face was found at that frame.
        landmarks: float32 ``[T, 478, 3]`` the face's landmarks in video pixels (interpolated
            between the two nearest video frames when resampled); NaN where no face.
        rest: the rest face every value is relative to (the first frame with a face, unless
            given): its landmarks, measures (the clip's neutral ones with
            ``rest="neutral"``) and frame index; None when no frame has a face.
        source_fps: the video's frame rate.
        size: ``(H, W)`` of the video frames.
        raw_pose: float32 ``[T, 6]`` the pose before smoothing (NaN where no face).
        raw_expression: float32 ``[T, 12]`` the expression before smoothing (NaN where no face).
        smoothing: the smoothing applied.
    """

    motion: Motion
    confidence: np.ndarray
    has_face: np.ndarray
    landmarks: np.ndarray
    rest: RestFace | None
    source_fps: float
    size: tuple[int, int]
    raw_pose: np.ndarray
    raw_expression: np.ndarray
    smoothing: SmoothingConfig

    @property
    def num_frames(self) -> int:
        return self.motion.num_frames

    @property
    def fps(self) -> float:
        return self.motion.fps

    @property
    def names(self) -> tuple[str, ...]:
        return self.motion.names

    def relative_to_first(self, expression: bool = True) -> Motion:
        """:attr:`motion` re-based on its first face frame (pose minus that frame's, scale
        divided by it, and with ``expression`` the coefficients minus that frame's): a driver
        delta that starts exactly at the rest pose, smoothing or not."""
        if not self.has_face.any():
            return self.motion
        first = int(np.argmax(self.has_face))
        pose = self.motion.pose.clone()
        pose[:, :5] -= pose[first, :5].clone()
        pose[:, 5] /= pose[first, 5].clone()
        coefficients = self.motion.expression
        if expression:
            coefficients = coefficients - coefficients[first]
        return Motion(pose, coefficients, self.motion.names, self.motion.fps)


def _frame_source(source: Any, max_frames: int | None) -> tuple[float, Iterable]:
    """``(fps, frames)`` for any source :func:`extract_motion` takes."""
    if isinstance(source, (str, Path)):
        from talkingface.io import video_frames

        frames = video_frames(source, max_frames=max_frames)
        fps, _has_audio = next(frames)
        return float(fps), frames
    if isinstance(source, Frames):
        return float(source.fps), source.to_uint8()
    if hasattr(source, "frames") and hasattr(source, "fps"):  # talkingface.io.VideoClip
        return float(source.fps), source.frames
    if isinstance(source, tuple) and len(source) == 2:
        frames, fps = source
        if not isinstance(fps, (int, float)) or not math.isfinite(fps) or fps <= 0:
            raise InputError(f"the frames' fps must be a positive number, got {fps!r}")
        return float(fps), frames
    raise InputError(
        f"extract_motion takes a video path, Frames, a VideoClip or (frames, fps), got "
        f"{type(source).__name__}"
    )


def _rest_face(rest: Any) -> RestFace | None:
    if isinstance(rest, str):
        if rest not in ("first", "neutral"):
            raise InputError(
                f"rest must be 'first', 'neutral', landmarks or FaceLandmarks, got {rest!r}"
            )
        return None
    if isinstance(rest, RestFace):
        return rest
    if isinstance(rest, FaceLandmarks):
        rest = rest.points
    points = rest.detach().cpu().numpy() if isinstance(rest, torch.Tensor) else np.asarray(rest)
    if points.shape != (NUM_LANDMARKS, 3):
        raise InputError(f"rest landmarks must be [478, 3], got {tuple(points.shape)}")
    return RestFace.from_points(points)


def extract_motion(
    source: Any,
    *,
    fps: float | None = None,
    smoothing: SmoothingConfig | str | None = "default",
    analyzer: FaceAnalyzer | None = None,
    max_frames: int | None = None,
    progress: Callable[[int], Any] | None = None,
    rest: Any = "first",
) -> MotionTrack:
    """Extract the face's motion from a video.

    Args:
        source: a video path (any container FFmpeg reads), :class:`Frames`, a
            ``talkingface.io.VideoClip``, or ``(frames, fps)`` with ``frames`` a uint8
            ``[T, H, W, 3]`` RGB tensor/array or any iterable of ``[H, W, 3]`` frames (read one
            at a time: a generator streams).
        fps: frame rate of the track (the pipeline's); default: the video's own. Values are
            interpolated between the two nearest video frames.
        smoothing: a :class:`SmoothingConfig`, a preset name (``"default"`` zero-phase,
            ``"stream"`` One-Euro, ``"none"``) or None (none).
        analyzer: the :class:`FaceAnalyzer` to use (default: one built here and closed at the
            end, that looks at every frame afresh: the landmarker's tracking mode is faster but
            drifts by a few degrees of head pose over a clip). With several faces the largest is
            followed.
        max_frames: read at most this many video frames.
        progress: called with 1 after each video frame (e.g. a tqdm bar's ``update``).
        rest: what the values are relative to: ``"first"`` (the first frame with a face, as
            it is: right for self-reenactment, where that frame is the portrait),
            ``"neutral"`` (the first frame's head pose, but the clip's neutral expression: lips
            closed as far as they get, eyes open as usual; right for driving another face
            when the first frame may be mid-word or mid-blink), or the rest face's landmarks
            (``FaceLandmarks``, ``[478, 3]`` in the video's pixels, or a ``RestFace``).

    Returns:
        The :class:`MotionTrack`.

    Raises:
        InputError: unreadable or empty video, or a bad argument.
    """
    config = smoothing_config(smoothing)
    if fps is not None and (not isinstance(fps, (int, float)) or not fps > 0):
        raise InputError(f"fps must be a positive number, got {fps!r}")
    if max_frames is not None and max_frames < 1:
        raise InputError(f"max_frames must be at least 1, got {max_frames}")
    rest_face = _rest_face(rest)
    neutral = rest == "neutral"
    source_fps, frames = _frame_source(source, max_frames)
    own = analyzer is None
    analyzer = analyzer or FaceAnalyzer(max_faces=1, static=True)
    points_list: list[np.ndarray | None] = []
    scores: list[float] = []
    size: tuple[int, int] | None = None
    tracking = False
    try:
        for index, frame in enumerate(frames):
            if max_frames is not None and index >= max_frames:
                break
            faces = analyzer.detect(frame)
            if faces and not tracking and not analyzer.static:
                # A face found afresh is placed by the detector; the tracker places the next
                # frames a little differently (a bias of a few per cent of the face), so the
                # frame is looked at once more, as the tracker sees it.
                faces = analyzer.detect(frame) or faces
            tracking = bool(faces)
            if size is None:
                size = tuple(int(s) for s in np.shape(frame)[:2])
            if faces:
                # float32, as found: 5.7 kB a frame (an hour at 25 fps: 0.5 GB).
                points_list.append(faces[0].points.detach().cpu().numpy())
                scores.append(float(faces[0].score))
            else:
                points_list.append(None)
                scores.append(0.0)
            if progress is not None:
                progress(1)
    finally:
        if own:
            analyzer.close()
    if not points_list:
        raise InputError("the video has no frames: give a non-empty video")
    return _track(
        points_list, scores, source_fps, fps or source_fps, size, config, rest_face, neutral
    )


def _track(
    points_list, scores, source_fps, fps, size, config, rest_face, neutral=False
) -> MotionTrack:
    """Fit, smooth and resample per-frame landmarks into a :class:`MotionTrack`."""
    n, k = len(points_list), len(FIT_NAMES)
    valid = np.array([p is not None for p in points_list])
    if rest_face is None and valid.any():
        first = int(np.argmax(valid))
        rest_face = RestFace.from_points(points_list[first].astype(np.float64), frame=first)
    raw = np.full((n, 6 + k), np.nan)
    confidence = np.zeros(n)
    landmarks = np.full((n, NUM_LANDMARKS, 3), np.nan, dtype=np.float32)
    if rest_face is not None:
        fitter = MotionFitter(rest_face)
        changes = np.zeros((n, len(MEASURES)))
        for i, points in enumerate(points_list):
            if points is None:
                continue
            raw[i, :6], changes[i], residual = fitter.measure(points)
            confidence[i] = scores[i] * max(0.0, 1.0 - residual / _RESIDUAL_FLOOR)
            landmarks[i] = points
        if neutral:
            offset = neutral_change(changes[valid])
            changes -= offset
            rest_face = replace(rest_face, measures=rest_face.measures + offset)
        for i in np.flatnonzero(valid):
            raw[i, 6:] = fitter.solve(changes[i])
    cutoff = np.array([config.pose_hz] * 6 + [
        config.fast_hz if name in _FAST else config.expression_hz for name in FIT_NAMES
    ])  # fmt: skip
    smooth = smooth_track(raw, valid, source_fps, config, cutoff)

    # Resample to the track's rate: output frame j sits at time j / fps.
    count = max(1, round(n * fps / source_fps))
    where = np.arange(count) * source_fps / fps
    lo = np.minimum(np.floor(where).astype(int), n - 1)
    hi = np.minimum(lo + 1, n - 1)
    frac = np.clip(where - lo, 0.0, 1.0)
    nearest = np.where(frac < 0.5, lo, hi)
    has_face = valid[nearest]
    # Between a face frame and a faceless one, take the face frame's value.
    w_hi = np.where(valid[lo] & valid[hi], frac, np.where(valid[hi], 1.0, 0.0))

    def resample(values: np.ndarray) -> np.ndarray:
        shape = (-1,) + (1,) * (values.ndim - 1)
        a, b = values[lo], values[hi]
        w = w_hi.reshape(shape).astype(values.dtype)
        return np.where(w == 0, a, np.where(w == 1, b, a * (1 - w) + b * w))

    smooth_out, raw_out = resample(smooth), resample(raw)
    landmarks_out = resample(landmarks)
    conf_out = np.where(has_face, resample(confidence), 0.0)
    smooth_out[~has_face] = np.nan
    raw_out[~has_face] = np.nan
    landmarks_out[~has_face] = np.nan
    filled = _hold_nearest(smooth_out, has_face)
    motion = Motion(
        torch.from_numpy(filled[:, :6]).float(),
        torch.from_numpy(filled[:, 6:]).float(),
        FIT_NAMES,
        float(fps),
    )
    return MotionTrack(
        motion=motion,
        confidence=conf_out.astype(np.float32),
        has_face=has_face,
        landmarks=landmarks_out.astype(np.float32),
        rest=rest_face,
        source_fps=float(source_fps),
        size=size or (0, 0),
        raw_pose=raw_out[:, :6].astype(np.float32),
        raw_expression=raw_out[:, 6:].astype(np.float32),
        smoothing=config,
    )


def _hold_nearest(values: np.ndarray, valid: np.ndarray) -> np.ndarray:
    """``values [T, D]`` with invalid rows set to the nearest valid row (earlier wins on a tie);
    all rows the rest pose (zeros, scale 1) when none is valid."""
    out = values.copy()
    if not valid.any():
        out[:] = 0.0
        out[:, 5] = 1.0
        return out
    index = np.arange(len(values))
    valid_index = index[valid]
    after = np.searchsorted(valid_index, index).clip(0, len(valid_index) - 1)
    before = (after - 1).clip(0)
    take_before = np.abs(valid_index[before] - index) <= np.abs(valid_index[after] - index)
    source = np.where(take_before, valid_index[before], valid_index[after])
    out[~valid] = values[source[~valid]]
    return out
