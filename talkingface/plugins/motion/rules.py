"""Rule-based motion generator: mouth shapes from visemes or loudness with coarticulation,
natural blinks, gaze fixations and speech-driven head motion. No weights; streams exactly.

Pose convention used here: yaw > 0 turns the face to its left (the viewer's right), pitch > 0
tilts the chin up, roll > 0 tilts the head to its left shoulder; tx/ty in fractions of the face
size, scale multiplies the head size.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch

from talkingface.pipeline.contracts import (
    EXPRESSION_NAMES,
    VISEMES,
    AudioFeatures,
    Controls,
    Motion,
)
from talkingface.pipeline.errors import ConfigError, ContractError
from talkingface.pipeline.stages import MotionGenerator, StreamProcessor

OUTPUT_NAMES: tuple[str, ...] = tuple(
    name for name in EXPRESSION_NAMES if name not in ("cheek_puff", "tongue")
)
_COL = {name: i for i, name in enumerate(OUTPUT_NAMES)}

# Mouth target of each viseme: (jaw_open, mouth_wide, mouth_round, lip_press).
VISEME_SHAPES: dict[str, tuple[float, float, float, float]] = dict(zip(VISEMES, (
    (0.0, 0.0, 0.0, 0.0),  # sil
    (0.0, 0.0, 0.0, 1.0),  # PP
    (0.08, 0.25, 0.0, 0.35),  # FF
    (0.2, 0.25, 0.0, 0.0),  # TH
    (0.22, 0.25, 0.0, 0.0),  # DD
    (0.3, 0.15, 0.0, 0.0),  # kk
    (0.18, 0.0, 0.6, 0.0),  # CH
    (0.1, 0.45, 0.0, 0.0),  # SS
    (0.2, 0.25, 0.0, 0.0),  # nn
    (0.2, 0.0, 0.45, 0.0),  # RR
    (0.85, 0.2, 0.0, 0.0),  # aa
    (0.5, 0.5, 0.0, 0.0),  # E
    (0.3, 0.7, 0.0, 0.0),  # ih
    (0.55, 0.0, 0.7, 0.0),  # oh
    (0.25, 0.0, 1.0, 0.0),  # ou
), strict=True))  # fmt: skip
_ENERGY_COLUMNS = ("level", "voicing", "centroid_khz", "low_high_db")
"""The ``ENERGY_FEATURES`` columns the rules read."""
_PRESS_FROM, _PRESS_FULL = 0.3, 0.7
"""PP posterior where the lips start to press and where they press fully."""
_CLOSURE_BELOW = 0.8
"""Relative loudness (1 = the recent peak) under which a p/b/m call may press the lips; full
permission 0.35 lower (about 6 dB quieter than the peak)."""
_MIN_PEAK = 0.5
"""Lowest loudness peak the jaw is measured against, so background noise stays closed."""

# Emotion at strength 1: expression offsets, head-motion factor, head pitch offset (degrees).
_EMOTIONS: dict[str, tuple[dict[str, float], float, float]] = {
    "neutral": ({}, 1.0, 0.0),
    "happy": ({"smile": 0.7, "mouth_wide": 0.15, "brow_up": 0.15}, 1.15, 1.0),
    "sad": ({"frown": 0.6, "brow_up": 0.25}, 0.6, -4.0),
    "surprised": ({"brow_up": 0.8, "jaw_open": 0.12}, 1.1, 1.5),
    "angry": ({"brow_down": 0.8, "frown": 0.35, "lip_press": 0.2}, 1.3, -1.5),
}

# Channels of the counter-based random stream (so draws never depend on chunking).
_BLINK, _BLINK_DURATION, _GAZE_TIME, _GAZE_KIND, _GAZE_X, _GAZE_Y = range(6)
_MASK = (1 << 64) - 1
_STYLE_OMEGA = 2 * math.pi * 1.5
"""Natural frequency (rad/s) at which emotion and head style follow a change of controls."""


def _uniform(seed: int, channel: int, index: int) -> float:
    """Uniform in [0, 1) from (seed, channel, index) via splitmix64: a pure function of the
    frame index, so batch and streaming draw the very same numbers."""
    z = (seed * 0x9E3779B97F4A7C15 + channel * 0xBF58476D1CE4E5B9 + index * 0x94D049BB133111EB)
    z &= _MASK
    for shift, mult in ((30, 0xBF58476D1CE4E5B9), (27, 0x94D049BB133111EB)):
        z = ((z ^ (z >> shift)) * mult) & _MASK
    z ^= z >> 31
    return (z >> 11) / float(1 << 53)


@dataclass
class RulesConfig:
    """Parameters of the ``rules`` motion generator.

    Attributes:
        mouth_gain: scales the mouth opening (jaw_open, mouth_wide, mouth_round).
        mouth_hz: natural frequency of the critically damped mouth response; higher follows
            the speech more tightly, lower blends neighbouring sounds more (coarticulation).
        press_hz: the same for lip closure (faster: lips must meet on p/b/m).
        yaw_deg: head-yaw amplitude scale in degrees at ``Controls.head_motion = 1`` (about
            the RMS yaw while speaking); pitch uses 0.8x and roll 0.5x of it. The default
            gives a mean pose change of ~0.2-0.25 deg/frame at 25 fps, inside the range measured
            on real talking-head videos (0.20-0.39 deg/frame).
        nod_deg: head-pitch amplitude of the nod on a strong syllable onset, in degrees.
        blink_min_s: shortest blink, seconds.
        blink_max_s: longest blink, seconds.
        anticipation_frames: future frames (0-2) the mouth blends in before a sound is heard
            (coarticulation); each one adds a frame of streaming latency.
        jaw_loudness: with ``visemes`` features, how much the jaw follows loudness (relative
            to its recent peak, scaled by the sound's openness) rather than the recognised
            sound's openness alone (1: loudness only, 0: openness only). The ``sphinx``
            preset's exact phones do best lower (0.2); measurements in ``benchmarks/README.md``.
        trust_closures: press the lips on every confident p/b/m call, loud or not. Off, a call
            on a sound near the recent loudness peak is taken for a misheard vowel and only
            relaxes the lips. On (the default) measured better with both phonetic encoders
            (``benchmarks/lipsync.py``; figures in ``benchmarks/README.md``).
    """

    mouth_gain: float = 1.0
    mouth_hz: float = 5.0
    press_hz: float = 9.0
    yaw_deg: float = 3.0
    nod_deg: float = 1.6
    blink_min_s: float = 0.12
    blink_max_s: float = 0.35
    anticipation_frames: int = 1
    jaw_loudness: float = 0.5
    trust_closures: bool = True


class RulesMotion(MotionGenerator):
    """Hand-written rules that turn ``energy`` or ``visemes`` features into semantic motion.

    - Mouth: each viseme has a target shape (``VISEME_SHAPES``); the posterior-weighted
      target, blended with the next ``lookahead_frames`` (anticipation), drives critically
      damped second-order filters, so shapes flow into each other instead of snapping. Lips
      press on a confident p/b/m, open on open vowels, round on o/u; the viseme encoder's
      ``level`` column scales the opening by loudness relative to its recent peak. From
      ``energy`` features the jaw follows that relative loudness and voicing, width the
      spectral centroid, rounding the low/high band ratio.
    - Blinks: a hazard process at ``Controls.blink_rate`` per minute, twice as likely in
      pauses as in speech, with a refractory gap; each blink 0.12-0.35 s, closing faster
      than it opens.
    - Head: slow seeded drift plus speech-driven sway whose amplitude follows the speech
      envelope, and nods on syllable onsets; all smooth (second-order filtered).
      ``Controls.head_motion`` scales it, ``still_head`` stops it, ``head_distance`` sets the
      scale column.
    - Gaze: fixations (0.6-3 s) near the camera with occasional glances away and fast
      (~40 ms) saccades between them, or ``Controls.gaze`` held fixed.
    - Emotion: smile/frown/brow offsets and a head-motion character per emotion, scaled by
      ``Controls.emotion_strength``.

    Every random choice comes from a counter-based generator keyed by ``Controls.seed`` and
    the frame index, so the output is seed-deterministic and identical in batch and streaming.
    """

    name = "rules"
    accepts = ("energy", "visemes")
    provides = OUTPUT_NAMES
    space = None
    lookahead_frames = RulesConfig.anticipation_frames  # __init__ sets the configured one
    Config = RulesConfig

    def __init__(self, config=None, *, device="cpu") -> None:
        super().__init__(config, device=device)
        if not 0 <= self.config.anticipation_frames <= 2:
            raise ConfigError(
                "rules: anticipation_frames must be 0, 1 or 2, got "
                f"{self.config.anticipation_frames}"
            )
        if not 0 <= self.config.jaw_loudness <= 1:
            raise ConfigError(
                f"rules: jaw_loudness must be in [0, 1], got {self.config.jaw_loudness}"
            )
        self.lookahead_frames = self.config.anticipation_frames

    def generate(self, features: AudioFeatures, controls: Controls) -> Motion:
        if not isinstance(features, AudioFeatures):
            raise TypeError(
                f"rules: expected AudioFeatures, got {type(features).__name__}; run an audio "
                "encoder (energy or visemes) first"
            )
        processor = self.stream(controls)
        parts = [p for p in (processor.push(features), processor.flush()) if p is not None]
        if not parts:
            return _empty_motion(features.fps, features.start_frame)
        return Motion.concat(parts)

    def stream(self, controls: Controls) -> StreamProcessor[AudioFeatures, Motion]:
        if not isinstance(controls, Controls):
            raise TypeError(
                f"rules: controls must be talkingface Controls, got {type(controls).__name__}"
            )
        return RulesStream(self.config, controls, self.lookahead_frames)


def _empty_motion(fps: float, start_frame: int) -> Motion:
    return Motion(torch.zeros(0, 6), torch.zeros(0, len(OUTPUT_NAMES)), OUTPUT_NAMES, fps,
                  start_frame=start_frame)


def mouth_drive(
    features: AudioFeatures,
    level_peak: float,
    jaw_loudness: float = RulesConfig.jaw_loudness,
    trust_closures: bool = RulesConfig.trust_closures,
) -> tuple[np.ndarray, float]:
    """Per-frame drive ``[T, 5]``: mouth targets (jaw, wide, round, press) and speech activity
    0..1, from one chunk of features, row by row.

    ``level_peak`` is the running loudness peak after the previous chunk (energy features
    open the jaw relative to it, so syllables stand out of loud and quiet speech alike); the
    updated peak is returned with the drive. ``jaw_loudness`` and ``trust_closures`` are the
    :class:`RulesConfig` fields of the same names.
    """
    values = features.values.double().numpy()
    names = features.names
    if features.kind == "visemes":
        if names is None or any(v not in names for v in VISEME_SHAPES):
            raise ContractError(
                f"rules: visemes features need the columns {list(VISEME_SHAPES)}, got {names}"
            )
        post = values[:, [names.index(v) for v in VISEME_SHAPES]]
        pp = list(VISEME_SHAPES).index("PP")
        if "level" in names:
            level = values[:, names.index("level")]
            relative, level_peak = _relative_level(level, level_peak, features.fps)
            # Closed lips damp the sound: a nasal murmur (m) or the silent hold of a stop
            # (p, b) is well below the syllable peaks. A p/b/m call on a sound near the peak
            # can be a mistake (real vowels sometimes look like PP to the net): unless closures
            # are trusted, the lips only press where the loudness agrees.
            quiet_enough = np.clip((_CLOSURE_BELOW - relative) / 0.35, 0.0, 1.0)
            if trust_closures:
                quiet_enough[:] = 1.0
        else:
            quiet_enough = np.ones(len(post))
        confidence = np.clip((post[:, pp] - _PRESS_FROM) / (_PRESS_FULL - _PRESS_FROM), 0, 1)
        confidence *= quiet_enough
        # A vague or implausible p/b/m relaxes the lips instead of pressing them.
        post[:, 0] += (1 - confidence) * post[:, pp]
        press = confidence * np.clip(post[:, pp] / _PRESS_FULL, 0, 1)
        post[:, pp] = 0.0
        mouth = post @ np.array(list(VISEME_SHAPES.values()))
        mouth[:, 3] = press
        speech = 1.0 - post[:, 0]
        if "level" in names:
            # The jaw follows loudness relative to the recent peak (what real jaws track most
            # closely, syllable by syllable), scaled by how open the recognised sound is; the
            # visemes decide the lip shape (width, rounding, closure).
            gate = np.clip(level * 3.0, 0.0, 1.0)
            openness = mouth[:, 0] / np.maximum(speech, 1e-3)  # jaw of the sound, given speech
            loud = relative**1.5 * gate * (0.6 + 0.4 * openness)
            mouth[:, 0] = jaw_loudness * loud + (1.0 - jaw_loudness) * mouth[:, 0]
            mouth[:, 1:3] *= (gate * (0.35 + 0.75 * relative))[:, None]
            speech = speech * np.clip(level * 2.0, 0.0, 1.0)
        return np.concatenate([mouth, speech[:, None]], axis=1), level_peak
    if features.kind == "energy":
        if names is None or any(c not in names for c in _ENERGY_COLUMNS):
            raise ContractError(
                f"rules: energy features need the columns {list(_ENERGY_COLUMNS)}, got {names}"
            )
        level, voicing, centroid, low_high = (values[:, names.index(c)] for c in _ENERGY_COLUMNS)
        relative, level_peak = _relative_level(level, level_peak, features.fps)
        gate = np.clip(level * 3.0, 0, 1)
        jaw = relative**1.5 * gate * (0.35 + 0.55 * voicing)
        wide = gate * np.clip((centroid - 0.8) / 2.5, 0, 1) * 0.6
        rounded = gate * voicing * np.clip((low_high - 22.0) / 12.0, 0, 1) * 0.6
        press = np.zeros_like(level)
        drive = np.stack([jaw, wide, rounded, press, np.clip(level * 1.5, 0, 1)], axis=1)
        return drive, level_peak
    raise ContractError(
        f"rules: cannot use {features.kind!r} features; it accepts energy or visemes "
        "(set audio=energy or audio=visemes)"
    )


def _relative_level(level: np.ndarray, peak: float, fps: float) -> tuple[np.ndarray, float]:
    """Level ``[T]`` relative to a running peak (1 at the peak, 0 at 0.4 below it) and the
    peak after the last row. The peak jumps up with the level and falls 0.3 per second."""
    fall = 0.3 / fps
    peaks = np.empty_like(level)
    for i, value in enumerate(level):
        peak = max(value, peak - fall, _MIN_PEAK)
        peaks[i] = peak
    return np.clip(1.0 - (peaks - level) / 0.4, 0, 1), peak


def _damped_step(x, v, target, omega, dt: float):
    """Exact step of the critically damped system x'' = w²(target - x) - 2w x' over dt with a
    constant target: stable for any w·dt, no overshoot. Works on floats and arrays alike."""
    e = x - target
    decay = np.exp(-omega * dt)
    k = v + omega * e
    x_new = target + (e + k * dt) * decay
    v_new = (v - omega * k * dt) * decay
    return x_new, v_new


class RulesStream(StreamProcessor[AudioFeatures, Motion]):
    """The one implementation of ``rules`` (batch runs it over the whole input in one push).

    Motion frame ``t`` is emitted once feature frames up to ``t + lookahead`` have arrived;
    at ``flush`` the missing future frames repeat the last one.
    """

    def __init__(self, config: RulesConfig, controls: Controls, lookahead: int) -> None:
        self.config, self.controls, self.lookahead = config, controls, lookahead
        self.fps: float | None = None
        self.kind: str | None = None
        self.pending = np.zeros((0, 5))  # drive rows of frames not yet emitted (+ lookahead)
        self.next_frame: int | None = None  # absolute index of pending[0]
        self.mouth = np.zeros(4)
        self.mouth_v = np.zeros(4)
        self.activity_hist = np.zeros(4)
        self.level_peak = _MIN_PEAK
        self.envelope = 0.0
        self.envelope_v = 0.0
        self.kick = 0.0
        self.kick_v = 0.0
        self.nod = 0.0
        self.nod_v = 0.0
        self.blink_start: int | None = None
        self.blink_frames = 0.0
        self.blink_ready = 0
        self.gaze = np.zeros(2)
        self.gaze_v = np.zeros(2)
        self.gaze_target = np.zeros(2)
        self.next_saccade = 0
        # Emotion offsets, head gain, pitch offset and head scale move towards the controls'
        # values at _STYLE_HZ, so a change mid-stream (set_controls) eases in; without a change
        # they sit exactly on their targets and every frame is what a batch run gives.
        self.style = self._style_target(controls)
        self.style_v = np.zeros_like(self.style)
        self.style_target = self.style
        self.controls = controls
        if controls.gaze is not None:
            self.gaze = np.array(controls.gaze)
        # Slow drift and speech sway: seeded sums of sinusoids (a pure function of time).
        rng = np.random.default_rng([controls.seed, 0x6D6F74])
        self.drift_freq = rng.uniform(0.03, 0.22, (3, 3))
        self.drift_phase = rng.uniform(0, 2 * math.pi, (3, 3))
        self.sway_freq = rng.uniform(0.4, 1.2, (3, 3))
        self.sway_phase = rng.uniform(0, 2 * math.pi, (3, 3))

    @staticmethod
    def _style_target(controls: Controls) -> np.ndarray:
        """``[K + 3]``: expression offsets of the emotion, head-motion gain, pitch offset
        (radians) and head scale that ``controls`` ask for."""
        offsets, motion_factor, pitch_offset = _EMOTIONS[controls.emotion]
        strength = controls.emotion_strength
        style = np.zeros(len(OUTPUT_NAMES) + 3)
        for name, value in offsets.items():
            style[_COL[name]] = value * strength
        if not controls.still_head:
            style[-3] = controls.head_motion * (1 + (motion_factor - 1) * strength)
            style[-2] = math.radians(pitch_offset * strength)
        style[-1] = controls.head_distance
        return style

    def set_controls(self, controls: Controls) -> None:
        """Steer the frames emitted from now on: emotion, head motion and distance ease in
        over about a third of a second, gaze moves like a saccade, blink rate applies at once.

        Raises:
            TypeError: not ``Controls``.
            ContractError: a different ``seed`` (the head's drift is drawn from it once per
                stream; a new one would jump the head).
        """
        if not isinstance(controls, Controls):
            raise TypeError(
                f"rules: controls must be talkingface Controls, got {type(controls).__name__}"
            )
        if controls.seed != self.controls.seed:
            raise ContractError(
                f"rules: the seed is fixed for a stream (it is {self.controls.seed}); start a "
                "new stream for another seed"
            )
        self.controls = controls
        self.style_target = self._style_target(controls)

    def push(self, chunk: AudioFeatures) -> Motion | None:
        if chunk is None:
            return None
        if not isinstance(chunk, AudioFeatures):
            raise TypeError(f"rules: expected AudioFeatures chunks, got {type(chunk).__name__}")
        if self.next_frame is None:
            self.fps, self.kind = chunk.fps, chunk.kind
            self.next_frame = chunk.start_frame
        elif chunk.fps != self.fps or chunk.kind != self.kind:
            raise ContractError(
                f"rules: a {chunk.kind} chunk at {chunk.fps} fps in a {self.kind} stream at "
                f"{self.fps} fps; a stream keeps one feature kind and frame rate"
            )
        expected = self.next_frame + len(self.pending)
        if chunk.start_frame != expected:
            raise ContractError(
                f"rules: chunk starts at frame {chunk.start_frame}, expected {expected}"
            )
        if chunk.num_frames == 0:
            return None
        drive, self.level_peak = mouth_drive(
            chunk, self.level_peak, self.config.jaw_loudness, self.config.trust_closures
        )
        self.pending = np.concatenate([self.pending, drive])
        return self._emit(len(self.pending) - self.lookahead)

    def flush(self) -> Motion | None:
        if not len(self.pending):
            return None
        count = len(self.pending)
        # No future beyond the end: hold the last frame so the ending is not forced shut.
        self.pending = np.concatenate([self.pending, np.repeat(self.pending[-1:], self.lookahead,
                                                               axis=0)])
        return self._emit(count)

    def _emit(self, count: int) -> Motion | None:
        if count <= 0:
            return None
        dt = 1.0 / self.fps
        start = self.next_frame
        pose = np.zeros((count, 6))
        expr = np.zeros((count, len(OUTPUT_NAMES)))
        anticipation = self._anticipated_targets(count)
        drift = self._drift(start, count)
        omega = 2 * math.pi * np.array([self.config.mouth_hz] * 3 + [self.config.press_hz])
        for i in range(count):
            frame = start + i
            self._track_speech(self.pending[i, 4], dt)
            self.mouth, self.mouth_v = _damped_step(
                self.mouth, self.mouth_v, anticipation[i], omega, dt
            )
            expr[i, :4] = self.mouth
            expr[i, 6:8] = self._blink(frame, dt)
            expr[i, 10:12] = self._gaze(frame, dt)
            self.style, self.style_v = _damped_step(self.style, self.style_v, self.style_target,
                                                    _STYLE_OMEGA, dt)
            expr[i] += self.style[:-3]
            pose[i] = self._head(drift[i])
        expr[:, :10] = np.clip(expr[:, :10], 0.0, 1.0)
        expr[:, 10:] = np.clip(expr[:, 10:], -1.0, 1.0)
        self.pending = self.pending[count:]
        self.next_frame = start + count
        return Motion(
            torch.from_numpy(pose).float(), torch.from_numpy(expr).float(), OUTPUT_NAMES,
            self.fps, start_frame=start,
        )

    def _anticipated_targets(self, count: int) -> np.ndarray:
        """Mouth targets ``[count, 4]`` blended with the next frames: the mouth starts moving
        towards a sound before it is heard, and closes fully for a coming p/b/m."""
        rows = self.pending[:, :4] * self.config.mouth_gain
        rows[:, 3] = self.pending[:, 3]
        weights = np.array([0.55, 0.3, 0.15][: self.lookahead + 1])
        weights = weights / weights.sum()
        out = np.zeros((count, 4))
        for j, w in enumerate(weights):
            out += w * rows[j:j + count]
        ahead = [self.pending[j:j + count, 3] * (1.0 - 0.15 * j) for j in range(self.lookahead + 1)]
        out[:, 3] = np.max(ahead, axis=0)
        # A pressing closure overrides the opening it coincides with.
        out[:, :3] *= (1.0 - 0.9 * out[:, 3:4])
        return out

    def _drift(self, start: int, count: int) -> np.ndarray:
        """Slow drift and sway carriers ``[count, 2, 3]`` (yaw, pitch, roll) at these frames."""
        t = (start + np.arange(count))[:, None, None] / self.fps
        drift = np.sin(2 * math.pi * self.drift_freq * t + self.drift_phase).sum(1)
        sway = np.sin(2 * math.pi * self.sway_freq * t + self.sway_phase).sum(1)
        return np.stack([drift, sway], axis=1) / math.sqrt(1.5)  # unit RMS per axis

    def _track_speech(self, activity: float, dt: float) -> None:
        """Speech envelope (~0.5 s, sets the sway amplitude and marks pauses) and the nod
        state, which syllable onsets (rises of activity) kick."""
        self.envelope, self.envelope_v = _damped_step(
            self.envelope, self.envelope_v, activity, 2 * math.pi * 0.5, dt
        )
        onset = max(0.0, activity - float(self.activity_hist.mean()))
        self.activity_hist = np.roll(self.activity_hist, -1)
        self.activity_hist[-1] = activity
        # Two cascaded smooth stages so a sudden onset still gives a jerk-free nod.
        self.kick, self.kick_v = _damped_step(self.kick, self.kick_v, onset * 6.0,
                                              2 * math.pi * 4.0, dt)
        self.nod, self.nod_v = _damped_step(self.nod, self.nod_v, self.kick,
                                            2 * math.pi * 1.5, dt)

    def _head(self, carriers: np.ndarray) -> np.ndarray:
        head_gain, pitch_offset, scale = self.style[-3:]
        if head_gain == 0.0:
            return np.array([0.0, 0.0, 0.0, 0.0, 0.0, scale])
        yaw_deg = self.config.yaw_deg
        axes = np.array([yaw_deg, 0.8 * yaw_deg, 0.5 * yaw_deg])
        envelope = float(np.clip(self.envelope, 0.0, 1.0))
        # Both drift and sway follow the speech envelope: a silent listener holds nearly
        # still (a silent clip keeps the portrait), a speaker moves.
        activity = 0.1 + 0.9 * envelope
        angles = axes * activity * (0.6 * carriers[0] + 0.9 * carriers[1])
        angles[1] -= self.config.nod_deg * self.nod
        angles = np.radians(angles) * head_gain
        angles[1] += pitch_offset
        # The head translates a little with its rotation (it turns about the neck).
        return np.array([angles[0], angles[1], angles[2], 0.15 * angles[0],
                         -0.1 * angles[1], scale])

    def _blink(self, frame: int, dt: float) -> float:
        seed, rate = self.controls.seed, self.controls.blink_rate
        if self.blink_start is None and rate > 0 and frame >= self.blink_ready:
            interval = 60.0 / rate
            refractory = min(1.0, 0.3 * interval)
            low, high = self.config.blink_min_s, self.config.blink_max_s
            mean_duration = low + (high - low) * 0.4  # E[u**1.5] = 0.4
            # The waiting time after the refractory gap makes the mean interval 60 / rate.
            hazard = 1.0 / max(interval - refractory - mean_duration, 0.1)
            # More likely in pauses, a little less while speaking.
            hazard *= 1.8 if self.envelope < 0.2 else 0.9
            if _uniform(seed, _BLINK, frame) < 1.0 - math.exp(-hazard * dt):
                u = _uniform(seed, _BLINK_DURATION, frame)
                self.blink_start = frame
                self.blink_frames = (low + (high - low) * u**1.5) * self.fps
                self.blink_ready = frame + math.ceil(self.blink_frames + refractory * self.fps)
        if self.blink_start is None:
            return 0.0
        x = (frame - self.blink_start) / self.blink_frames
        if x >= 1.0:
            self.blink_start = None
            return 0.0
        close = 0.35  # the lid falls faster than it rises
        if x < close:
            return math.sin(0.5 * math.pi * x / close) ** 2
        return math.cos(0.5 * math.pi * (x - close) / (1 - close)) ** 2

    def _gaze(self, frame: int, dt: float) -> np.ndarray:
        seed = self.controls.seed
        if self.controls.gaze is not None:
            self.gaze_target = np.array(self.controls.gaze)
        elif frame >= self.next_saccade:
            if _uniform(seed, _GAZE_KIND, frame) < 0.8:
                spread = np.array([0.08, 0.05])  # fixations near the camera
            else:
                spread = np.array([0.35, 0.18])  # a glance away
            u = np.array([_uniform(seed, _GAZE_X, frame), _uniform(seed, _GAZE_Y, frame)])
            self.gaze_target = (2 * u - 1) * spread
            hold = 0.6 * 5.0 ** _uniform(seed, _GAZE_TIME, frame)  # 0.6 .. 3 s
            self.next_saccade = frame + max(1, round(hold * self.fps))
        self.gaze, self.gaze_v = _damped_step(self.gaze, self.gaze_v, self.gaze_target,
                                              np.array([2 * math.pi * 8.0] * 2), dt)
        return self.gaze
