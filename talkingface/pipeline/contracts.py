"""Data contracts passed between stages: frozen dataclasses of tensors, validated on creation.

Every object that crosses a stage boundary is one of these. Construction checks shape, dtype and
rate and raises :class:`~talkingface.pipeline.errors.ContractError` with a message naming the
field, what was expected and what was given. Streaming chunks are the same types, with
``start_frame`` (or ``offset`` for audio) saying where the chunk sits in the whole stream.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, replace
from typing import Any

import torch

from talkingface.pipeline.errors import ContractError

POSE_NAMES: tuple[str, ...] = ("yaw", "pitch", "roll", "tx", "ty", "scale")
"""Columns of ``Motion.pose``: radians for the rotations, fractions of the face size for the
translations, and a multiplicative scale (1 = the portrait's head size)."""

EXPRESSION_NAMES: tuple[str, ...] = (
    "jaw_open",
    "mouth_wide",
    "mouth_round",
    "lip_press",
    "smile",
    "frown",
    "blink_l",
    "blink_r",
    "brow_up",
    "brow_down",
    "gaze_x",
    "gaze_y",
    "cheek_puff",
    "tongue",
)
"""The shared vocabulary of semantic expression coefficients. Stages may produce or require a
subset, or extra names of their own; the graph matches them by name. Ranges: 0..1 for
openings and blinks, -1..1 for gaze (right/up positive) and signed shape changes."""

EMOTIONS: tuple[str, ...] = ("neutral", "happy", "sad", "surprised", "angry")

VISEMES: tuple[str, ...] = (
    "sil", "PP", "FF", "TH", "DD", "kk", "CH", "SS", "nn", "RR", "aa", "E", "ih", "oh", "ou",
)  # fmt: skip
"""The viseme classes of ``"visemes"`` features (the Oculus/MPEG-4 set: silence, p/b/m, f/v,
th, t/d, k/g, ch/j/sh, s/z, n/l, r, then the vowels aa, e, i, o, u)."""
VISEME_FEATURES: tuple[str, ...] = (*VISEMES, "level")
"""Columns of ``AudioFeatures`` of kind ``"visemes"``: the 15 viseme posteriors (summing to 1),
then the 0..1 speech level. Encoders that produce this kind use this layout; motion generators
that accept it read columns by these names."""
ENERGY_FEATURES: tuple[str, ...] = (
    "loudness_db", "level", "onset", "centroid_khz", "low_high_db", "zcr", "voicing",
)  # fmt: skip
"""Columns of ``AudioFeatures`` of kind ``"energy"``: loudness (dBFS), 0..1 level, onset
strength, spectral centroid (kHz), low/high band balance (dB), zero-crossing rate, voicing."""

LIVEPORTRAIT_SPACE = "liveportrait-kp70"
"""Latent space tag of motion in LivePortrait's keypoint space (JoyVASA/Ditto-style
generators): ``Motion.latent [T, 70]`` laid out as :data:`LIVEPORTRAIT_LATENT`."""
LIVEPORTRAIT_LATENT: tuple[tuple[str, int], ...] = (
    ("exp", 63), ("pitch", 1), ("yaw", 1), ("roll", 1), ("t", 3), ("scale", 1),
)  # fmt: skip
"""Columns of a :data:`LIVEPORTRAIT_SPACE` latent, in order, with their widths: what
LivePortrait's motion extractor reports for a driving frame. ``exp`` is the 21 x 3 expression
deformation (keypoint-major: x, y, z of keypoint 0 first), ``pitch``/``yaw``/``roll`` are
absolute head angles in degrees, ``t`` the translation (its z is unused) and ``scale`` the
keypoint scale. The renderer places the portrait's own canonical keypoints ``kp`` with them:
``scale * (kp @ R(pitch, yaw, roll) + exp) + (t_x, t_y, 0)``."""

STAGE_KINDS: dict[str, str] = {
    "audio": "audio encoder",
    "motion": "motion generator",
    "render": "renderer",
}
"""The three stage kinds, in pipeline order, with what each is called in messages. Config keys
(``audio=``, ``motion=``, ``render=``), registry sections and stage bases all use these keys."""


def num_frames_for(num_samples: int, sample_rate: int, fps: float) -> int:
    """Number of video frames that cover ``num_samples`` of audio: ceil(duration * fps)."""
    return max(0, math.ceil(num_samples * fps / sample_rate - 1e-9))


def _fail(where: str, msg: str) -> None:
    raise ContractError(f"{where}: {msg}")


def _check_tensor(
    where: str,
    name: str,
    value: Any,
    ndims: tuple[int, ...],
    dtypes: tuple[torch.dtype, ...],
    dims: str,
) -> None:
    if not isinstance(value, torch.Tensor):
        _fail(where, f"{name} must be a torch.Tensor {dims}, got {type(value).__name__}")
    if value.ndim not in ndims:
        _fail(where, f"{name} must have shape {dims}, got {tuple(value.shape)}")
    if value.dtype not in dtypes:
        names = ", ".join(str(d).replace("torch.", "") for d in dtypes)
        got = str(value.dtype).replace("torch.", "")
        _fail(where, f"{name} must have dtype {names}, got {got}")


def _check_rate(where: str, name: str, value: float) -> None:
    if not isinstance(value, (int, float)) or not math.isfinite(value) or value <= 0:
        _fail(where, f"{name} must be a positive number, got {value!r}")


def _check_start(where: str, value: int) -> None:
    if not isinstance(value, int) or value < 0:
        _fail(where, f"start index must be a non-negative int, got {value!r}")


_FLOATS = (torch.float32, torch.float16, torch.bfloat16, torch.float64)


@dataclass(frozen=True)
class Audio:
    """Mono waveform.

    Attributes:
        samples: float32 ``[S]`` (or ``[B, S]`` for a batch of equal-length clips), in -1..1.
        sample_rate: samples per second.
        offset: index of ``samples[0]`` in the whole stream (non-zero for streaming chunks).
    """

    samples: torch.Tensor
    sample_rate: int
    offset: int = 0

    def __post_init__(self) -> None:
        _check_tensor("Audio", "samples", self.samples, (1, 2), (torch.float32,), "[S] or [B, S]")
        if not isinstance(self.sample_rate, int) or self.sample_rate <= 0:
            _fail("Audio", f"sample_rate must be a positive int, got {self.sample_rate!r}")
        _check_start("Audio", self.offset)

    @property
    def num_samples(self) -> int:
        return int(self.samples.shape[-1])

    @property
    def duration(self) -> float:
        """Seconds of audio in this object."""
        return self.num_samples / self.sample_rate

    def slice(self, start: int, stop: int) -> Audio:
        """Samples ``[start, stop)`` (indices local to this object) as a chunk with its offset."""
        start, stop = max(0, start), min(self.num_samples, stop)
        return Audio(self.samples[..., start:stop], self.sample_rate, self.offset + start)

    def chunks(self, chunk_samples: int):
        """Split into consecutive chunks of ``chunk_samples`` (the last may be shorter)."""
        if chunk_samples <= 0:
            raise ValueError(f"chunk_samples must be positive, got {chunk_samples}")
        for start in range(0, self.num_samples, chunk_samples):
            yield self.slice(start, start + chunk_samples)


@dataclass(frozen=True)
class AudioFeatures:
    """Per-video-frame audio features.

    Attributes:
        values: float32 ``[T, D]``; row ``t`` describes video frame ``start_frame + t``.
        fps: the video frame rate the rows are aligned to.
        kind: what the columns are (e.g. ``"energy"``, ``"visemes"``, ``"wav2vec2-768"``);
            motion generators declare the kinds they accept.
        names: optional column names (``len(names) == D``).
        start_frame: index of the first row in the whole stream.
    """

    values: torch.Tensor
    fps: float
    kind: str
    names: tuple[str, ...] | None = None
    start_frame: int = 0

    def __post_init__(self) -> None:
        _check_tensor("AudioFeatures", "values", self.values, (2,), (torch.float32,), "[T, D]")
        _check_rate("AudioFeatures", "fps", self.fps)
        if not isinstance(self.kind, str) or not self.kind:
            _fail("AudioFeatures", f"kind must be a non-empty string, got {self.kind!r}")
        if self.names is not None and len(self.names) != self.values.shape[1]:
            _fail(
                "AudioFeatures",
                f"{len(self.names)} names for {self.values.shape[1]} columns ({self.kind})",
            )
        _check_start("AudioFeatures", self.start_frame)

    @property
    def num_frames(self) -> int:
        return int(self.values.shape[0])

    def slice(self, start: int, stop: int) -> AudioFeatures:
        """Rows ``[start, stop)`` (local indices) with ``start_frame`` adjusted."""
        start, stop = max(0, start), min(self.num_frames, stop)
        return replace(self, values=self.values[start:stop], start_frame=self.start_frame + start)

    @staticmethod
    def concat(parts: list[AudioFeatures]) -> AudioFeatures:
        """Join consecutive chunks back into one object (checks they are contiguous)."""
        return _concat(parts, "values", "AudioFeatures")


@dataclass(frozen=True)
class Motion:
    """What a renderer consumes: head pose and expression per frame.

    Attributes:
        pose: float32 ``[T, 6]``: yaw, pitch, roll (radians), tx, ty, scale (see POSE_NAMES).
        expression: float32 ``[T, K]`` semantic coefficients named by ``names``.
        names: the ``K`` expression names (see EXPRESSION_NAMES for the shared vocabulary).
        fps: frame rate.
        latent: optional float32 ``[T, D]`` in a model-specific motion space.
        space: tag of the latent space (e.g. ``"liveportrait-exp63"``), required with ``latent``.
        start_frame: index of the first frame in the whole stream.
    """

    pose: torch.Tensor
    expression: torch.Tensor
    names: tuple[str, ...]
    fps: float
    latent: torch.Tensor | None = None
    space: str | None = None
    start_frame: int = 0

    def __post_init__(self) -> None:
        _check_tensor("Motion", "pose", self.pose, (2,), (torch.float32,), "[T, 6]")
        if self.pose.shape[1] != len(POSE_NAMES):
            _fail("Motion", f"pose must have shape [T, 6], got {tuple(self.pose.shape)}")
        _check_tensor("Motion", "expression", self.expression, (2,), (torch.float32,), "[T, K]")
        t = self.pose.shape[0]
        if self.expression.shape[0] != t:
            _fail("Motion", f"expression has {self.expression.shape[0]} frames, pose has {t}")
        if not isinstance(self.names, tuple) or len(self.names) != self.expression.shape[1]:
            _fail(
                "Motion",
                f"names must be a tuple of {self.expression.shape[1]} strings, got {self.names!r}",
            )
        if len(set(self.names)) != len(self.names):
            _fail("Motion", f"duplicate expression names in {self.names!r}")
        _check_rate("Motion", "fps", self.fps)
        if self.latent is not None:
            _check_tensor("Motion", "latent", self.latent, (2,), (torch.float32,), "[T, D]")
            if self.latent.shape[0] != t:
                _fail("Motion", f"latent has {self.latent.shape[0]} frames, pose has {t}")
            if not self.space:
                _fail("Motion", "a latent needs its space tag (Motion.space)")
        _check_start("Motion", self.start_frame)

    @property
    def num_frames(self) -> int:
        return int(self.pose.shape[0])

    def get(self, name: str, default: float = 0.0) -> torch.Tensor:
        """Column ``name`` of the expression as ``[T]`` (``default`` if absent)."""
        if name in self.names:
            return self.expression[:, self.names.index(name)]
        return torch.full((self.num_frames,), float(default))

    def slice(self, start: int, stop: int) -> Motion:
        """Frames ``[start, stop)`` (local indices) with ``start_frame`` adjusted."""
        start, stop = max(0, start), min(self.num_frames, stop)
        return replace(
            self,
            pose=self.pose[start:stop],
            expression=self.expression[start:stop],
            latent=None if self.latent is None else self.latent[start:stop],
            start_frame=self.start_frame + start,
        )

    @staticmethod
    def concat(parts: list[Motion]) -> Motion:
        """Join consecutive chunks back into one object (checks they are contiguous)."""
        return _concat(parts, ("pose", "expression", "latent"), "Motion")


@dataclass(frozen=True)
class Frames:
    """Video frames.

    Attributes:
        data: ``[T, H, W, 3]`` uint8 (0..255) or float32 (0..1), RGB, channels last.
        fps: frame rate.
        start_frame: index of the first frame in the whole stream.
    """

    data: torch.Tensor
    fps: float
    start_frame: int = 0

    def __post_init__(self) -> None:
        _check_tensor(
            "Frames", "data", self.data, (4,), (torch.uint8, torch.float32), "[T, H, W, 3]"
        )
        if self.data.shape[-1] != 3:
            _fail("Frames", f"data must have 3 channels (RGB) last, got {tuple(self.data.shape)}")
        _check_rate("Frames", "fps", self.fps)
        _check_start("Frames", self.start_frame)

    @property
    def num_frames(self) -> int:
        return int(self.data.shape[0])

    @property
    def size(self) -> tuple[int, int]:
        """(height, width)."""
        return int(self.data.shape[1]), int(self.data.shape[2])

    def to_uint8(self) -> torch.Tensor:
        """``[T, H, W, 3]`` uint8 on the CPU."""
        if self.data.dtype == torch.uint8:
            return self.data.cpu()
        return (self.data.clamp(0, 1) * 255 + 0.5).to(torch.uint8).cpu()

    def slice(self, start: int, stop: int) -> Frames:
        start, stop = max(0, start), min(self.num_frames, stop)
        return replace(self, data=self.data[start:stop], start_frame=self.start_frame + start)

    @staticmethod
    def concat(parts: list[Frames]) -> Frames:
        """Join consecutive chunks back into one object (checks they are contiguous)."""
        return _concat(parts, "data", "Frames")


@dataclass(frozen=True)
class Controls:
    """What the user steers. Generators honour the fields they understand and ignore the rest.

    Attributes:
        gaze: fixed gaze direction ``(x, y)`` in -1..1 (right/up positive), or None for natural
            gaze with fixations and saccades.
        head_distance: apparent head size; 1 = as in the portrait, >1 = closer.
        emotion: one of EMOTIONS.
        emotion_strength: 0..1.
        head_motion: head-motion amplitude multiplier (0 = still, 1 = natural, 2 = lively).
        blink_rate: blinks per minute on average.
        still_head: keep the head still (overrides head_motion).
        guidance: classifier-free guidance scales by name, for diffusion generators
            (e.g. ``{"audio": 0.5, "emotion": 1.0}``).
        seed: seed for every random choice; the same seed gives the same video.
    """

    gaze: tuple[float, float] | None = None
    head_distance: float = 1.0
    emotion: str = "neutral"
    emotion_strength: float = 1.0
    head_motion: float = 1.0
    blink_rate: float = 17.0
    still_head: bool = False
    guidance: dict[str, float] = field(default_factory=dict)
    seed: int = 0

    def __post_init__(self) -> None:
        if self.gaze is not None:
            if len(self.gaze) != 2 or any(not -1.0 <= float(g) <= 1.0 for g in self.gaze):
                _fail("Controls", f"gaze must be (x, y) with values in -1..1, got {self.gaze!r}")
            object.__setattr__(self, "gaze", (float(self.gaze[0]), float(self.gaze[1])))
        if self.emotion not in EMOTIONS:
            _fail("Controls", f"emotion must be one of {', '.join(EMOTIONS)}; got {self.emotion!r}")
        checks = {
            "head_distance": (0.5, 2.0),
            "emotion_strength": (0.0, 1.0),
            "head_motion": (0.0, 3.0),
            "blink_rate": (0.0, 60.0),
        }
        for name, (lo, hi) in checks.items():
            value = getattr(self, name)
            if not isinstance(value, (int, float)) or not lo <= value <= hi:
                _fail("Controls", f"{name} must be a number in {lo}..{hi}, got {value!r}")
        if not isinstance(self.seed, int):
            _fail("Controls", f"seed must be an int, got {self.seed!r}")


@dataclass(frozen=True)
class Portrait:
    """A loaded still image, before any stage has looked at it.

    Attributes:
        pixels: uint8 ``[H, W, 3]`` RGB (alpha composited on white, grayscale expanded,
            EXIF rotation applied).
        source: where it came from (a path, or ``"<array>"``), for messages and metadata.
    """

    pixels: torch.Tensor
    source: str = "<array>"

    def __post_init__(self) -> None:
        _check_tensor("Portrait", "pixels", self.pixels, (3,), (torch.uint8,), "[H, W, 3]")
        if self.pixels.shape[-1] != 3:
            _fail("Portrait", f"pixels must be [H, W, 3] RGB, got {tuple(self.pixels.shape)}")

    @property
    def size(self) -> tuple[int, int]:
        """(height, width)."""
        return int(self.pixels.shape[0]), int(self.pixels.shape[1])


@dataclass(frozen=True)
class FaceLandmarks:
    """One face's landmarks (``talkingface.face``: MediaPipe's 478-point mesh).

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
    """A face cut out of an image (``talkingface.face.align_crop``): the aligned square crop a
    renderer animates.

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


@dataclass(frozen=True)
class PreparedPortrait:
    """A portrait after a renderer's one-time ``prepare`` (face analysis, source encoding).

    Attributes:
        portrait: the input portrait.
        renderer: name of the renderer that prepared it (a prepared portrait only fits that one).
        size: ``(H, W)`` of the frames the renderer will produce.
        state: the renderer's own data (rig, encoded features, ...): private to it.
        crop: the aligned face crop the renderer animates (its image, the portrait -> crop
            matrix, the landmarks in crop pixels), for metrics and tools; None for a renderer
            that works without one.
    """

    portrait: Portrait
    renderer: str
    size: tuple[int, int]
    state: dict[str, Any] = field(default_factory=dict)
    crop: FaceCrop | None = None


def _concat(parts: list, fields: str | tuple[str, ...], where: str):
    if not parts:
        _fail(where, "nothing to concatenate")
    fields = (fields,) if isinstance(fields, str) else fields
    first = parts[0]
    expected = first.start_frame
    for part in parts:
        if part.start_frame != expected:
            _fail(where, f"chunks are not contiguous: expected frame {expected}, "
                  f"got {part.start_frame}")
        expected += part.num_frames
    joined = {}
    for name in fields:
        values = [getattr(p, name) for p in parts]
        joined[name] = None if values[0] is None else torch.cat(values, dim=0)
    return replace(first, **joined)
