"""Video-driven motion: the ``video`` motion source animates a portrait with the head and face
motion of another video (a "driver"), as LivePortrait does, instead of motion made from audio.

    talkingface run --image me.jpg motion=video motion.params.path=driver.mp4

The driver's motion is extracted once (:func:`talkingface.face.motion_track.extract_motion`)
relative to the driver's own rest face (its first face frame's pose, its neutral expression),
so what reaches the renderer is the driver's change from its rest, applied to the portrait's:
the portrait keeps its identity and pose.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch

from talkingface.face.motion_fit import FIT_NAMES
from talkingface.pipeline.contracts import AudioFeatures, Controls, Motion
from talkingface.pipeline.errors import ConfigError, InputError
from talkingface.pipeline.stages import MotionGenerator, PerChunkStream, StreamProcessor

_ENDS = ("hold", "loop", "mirror")


@dataclass
class VideoMotionConfig:
    """Parameters of the ``video`` motion source.

    Attributes:
        path: the driver video (any container FFmpeg reads). Its sound track is the run's
            audio when no audio is given.
        rest: what the driver's motion is relative to: ``neutral`` (its first frame's head
            pose with its neutral expression over the clip: lips closed as far as they get, eyes
            open as usual, so a driver that starts mid-word does not read every closed mouth as
            pressed lips) or ``first`` (its first frame exactly, for a portrait that is that
            frame).
        smoothing: how the extracted track is smoothed: ``default`` (zero-phase), ``stream``
            (One-Euro, causal), ``none``.
        end: what the motion does when the audio outlasts the driver: ``hold`` its last frame,
            ``loop`` it from the start (a jump back to its first frame), or play it back and
            forth (``mirror``, no jump). A driver longer than the audio is cut where the audio
            ends.
        max_frames: read at most this many driver frames (None: all).
    """

    path: str | None = None
    rest: str = "neutral"
    smoothing: str = "default"
    end: str = "hold"
    max_frames: int | None = None


class VideoMotion(MotionGenerator):
    """Head pose and expression from a driver video, relative to the driver's rest face.

    The rest is the driver's first face frame's pose (exactly, after smoothing) and its neutral
    expression (that frame's with ``rest=first``).

    The audio features only set how many frames to make: frame ``t`` of the output takes the
    driver's motion at time ``t / fps`` (interpolated between its frames), so batch and
    streaming agree frame for frame. Frames where the driver shows no face hold the nearest
    face frame. ``Controls.head_motion`` scales the head's rotation and translation,
    ``still_head`` stops them, ``head_distance`` multiplies the scale; the expression is the
    driver's.
    """

    name = "video"
    accepts = ("*",)
    provides = FIT_NAMES
    space = None
    lookahead_frames = 0
    Config = VideoMotionConfig

    def __init__(self, config=None, *, device="cpu") -> None:
        super().__init__(config, device=device)
        cfg = self.config
        if cfg.rest not in ("neutral", "first"):
            raise ConfigError(f"video: rest must be neutral or first, got {cfg.rest!r}")
        if cfg.end not in _ENDS:
            raise ConfigError(f"video: end must be one of {', '.join(_ENDS)}, got {cfg.end!r}")
        from talkingface.face.smoothing import smoothing_config

        smoothing_config(cfg.smoothing)  # a bad name fails when the pipeline is built
        self.track = None
        self._relative: tuple | None = None

    def _path(self) -> Path:
        if not self.config.path:
            raise InputError(
                "the video motion source needs a driver video: set motion.params.path=driver.mp4"
            )
        return Path(self.config.path)

    def default_audio(self) -> Path:
        """The driver's sound track is the run's audio unless one is given."""
        from talkingface.io import probe_media

        path = self._path()
        if probe_media(path)["audio"] is None:
            raise InputError(
                f"the driver video {path} has no sound track: give the speech with --audio "
                "(or audio= in the API)"
            )
        return path

    def load(self) -> None:
        from talkingface.face.motion_track import extract_motion

        path = self._path()
        cfg = self.config
        track = extract_motion(
            path, smoothing=cfg.smoothing, max_frames=cfg.max_frames, rest=cfg.rest
        )
        if not track.has_face.any():
            raise InputError(
                f"no face found in the driver video {path}: use a video where one face is "
                "clearly visible, facing the camera"
            )
        self.track = track
        self.loaded = True

    def generate(self, features: AudioFeatures, controls: Controls) -> Motion:
        if not isinstance(features, AudioFeatures):
            raise TypeError(
                f"video: expected AudioFeatures, got {type(features).__name__}; they set the "
                "frames to make"
            )
        if not isinstance(controls, Controls):
            raise TypeError(
                f"video: controls must be talkingface Controls, got {type(controls).__name__}"
            )
        self.ensure_loaded()
        frames = features.start_frame + torch.arange(features.num_frames, dtype=torch.float64)
        pose, expression = self._sample(frames * self.track.fps / features.fps)
        gain = 0.0 if controls.still_head else controls.head_motion
        pose[:, :5] *= gain
        pose[:, 5] = 1.0 + (pose[:, 5] - 1.0) * gain
        pose[:, 5] *= controls.head_distance
        return Motion(pose, expression, FIT_NAMES, features.fps, start_frame=features.start_frame)

    def stream(self, controls: Controls) -> StreamProcessor[AudioFeatures, Motion]:
        return PerChunkStream(lambda features: self.generate(features, controls))

    def _sample(self, where: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Driver pose ``[T, 6]`` and expression ``[T, K]`` at fractional driver frames."""
        motion = self._driver_motion()
        count = motion.num_frames
        end = self.config.end
        if end == "loop":
            where = torch.remainder(where, count)
        elif end == "mirror" and count > 1:
            period = 2 * (count - 1)
            where = torch.remainder(where, period)
            where = torch.where(where > count - 1, period - where, where)
        where = where.clamp(0, count - 1)
        lo = where.floor().long()
        hi = (lo + 1).clamp(max=count - 1)
        frac = (where - lo).float()[:, None]
        pose = torch.lerp(motion.pose[lo], motion.pose[hi], frac)
        expression = torch.lerp(motion.expression[lo], motion.expression[hi], frac)
        return pose, expression

    def _driver_motion(self) -> Motion:
        """The track re-based on its first face frame after smoothing, so the first frame is
        exactly the portrait's own pose (and with ``rest=first`` its expression; cached per
        track)."""
        if self._relative is None or self._relative[0] is not self.track:
            first = self.config.rest == "first"
            self._relative = (self.track, self.track.relative_to_first(expression=first))
        return self._relative[1]

    def declarations(self) -> dict:
        return super().declarations() | {"driver": self.config.path}
