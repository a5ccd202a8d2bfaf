"""Runs pipeline variants on a set of inputs with the same seeds and measures every result.

A *variant* is a named pipeline config (preset, YAML file and/or dotlist overrides, plus a few
compare-only overrides that damage the input on purpose, to check that the metrics notice). An
*input* is a portrait with a speech clip, or a real talking video whose first frame is the
portrait and whose frames are the ground truth: its own audio drives the audio-driven variants,
and its own motion the video-driven ones (``motion=video``: self-reenactment, scored by
:mod:`talkingface.compare.reenact`). Each variant × input run yields metric rows (long format),
per-frame curves, a few key frames and a strip of frames for the report; a failure becomes a
row with its status and one-line error instead of stopping the comparison.
"""

from __future__ import annotations

import math
import traceback
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from talkingface.compare import metrics as M
from talkingface.compare import reenact as RE
from talkingface.pipeline.errors import InputError, TalkingFaceError

IMAGE_EXTS = (".jpg", ".jpeg", ".png", ".webp", ".bmp")
AUDIO_EXTS = (".wav", ".flac", ".mp3", ".ogg", ".m4a")
VIDEO_EXTS = (".mp4", ".mov", ".mkv", ".avi", ".webm", ".m4v")

REAL = "real video"
"""Pseudo-variant name of the rows measured on the real videos themselves (the reference)."""

KEY_MOMENTS = ("rest", "open vowel", "bilabial", "blink")
"""Key frames shown side by side in the report (see :class:`KeyFramePicker`)."""

COMPARE_KEYS = {
    "audio_shift_frames": "delay the driving audio by N video frames (negative: advance it); "
    "metrics still use the original audio, so this simulates an audio-visual offset",
    "mute_audio": "drive the pipeline with silence (a mouth that never moves); metrics still "
    "use the original audio",
}
"""Overrides handled by compare itself, not by the pipeline config: deliberately broken
variants that check the metrics rank them low."""

FIDELITY_FRAMES = 24  # frames sampled for PSNR/SSIM: enough for a stable mean, cheap on a CPU
STILL_MOUTH_STD = 0.003
"""A generated mouth whose opening varies less than this (std, fraction of face height: about
the landmark noise on a still face) does not move: its correlation with the real one is 0."""
AV_WINDOW_S = 1.0  # audio-visual offsets are searched within ±1 s
ALIGN_MIN_R = 0.2  # below this the real video's own AV offset is too uncertain to correct
THUMB = 160  # pixel size of the key-frame thumbnails kept for the report
STRIP_FRAMES = 5  # frames of the self-reenactment strip (real | each variant), evenly in time


@dataclass(frozen=True)
class Variant:
    """A named pipeline configuration to compare.

    Attributes:
        name: label in tables and plots.
        source: preset name or YAML path (``"default"`` when none is given).
        overrides: dotlist overrides for the pipeline config.
        audio_shift_frames: compare-only: frames to delay the driving audio by.
        mute_audio: compare-only: drive the pipeline with silence.
    """

    name: str
    source: str = "default"
    overrides: tuple[str, ...] = ()
    audio_shift_frames: int = 0
    mute_audio: bool = False

    @property
    def spec(self) -> str:
        """The variant written back as ``NAME=...`` (for tables and the JSON)."""
        parts = [] if self.source == "default" else [self.source]
        parts += list(self.overrides)
        if self.audio_shift_frames:
            parts.append(f"audio_shift_frames={self.audio_shift_frames}")
        if self.mute_audio:
            parts.append("mute_audio=true")
        return f"{self.name}={' '.join(parts)}"


def parse_variant(text: str) -> Variant:
    """Parse ``NAME=OVERRIDES``: OVERRIDES is whitespace-separated ``KEY=VALUE`` items plus at
    most one preset name or YAML path; empty means the default pipeline.

    Examples: ``default=``, ``energy=audio=energy``, ``fast=fast.yaml render.params.x=1``,
    ``broken=audio_shift_frames=10``, ``still=mute_audio=true``.
    """
    name, sep, rest = text.partition("=")
    name = name.strip()
    if not sep or not name:
        raise InputError(
            f"--variant {text!r} is not NAME=OVERRIDES; e.g. --variant energy=audio=energy "
            "or --variant default= for the default pipeline"
        )
    source, overrides, shift, mute = "default", [], 0, False
    for item in rest.split():
        key, eq, value = item.partition("=")
        if not eq:
            if source != "default":
                raise InputError(
                    f"variant {name!r} names two configs ({source!r} and {item!r}); give one "
                    "preset or YAML file and KEY=VALUE overrides"
                )
            source = item
        elif key == "audio_shift_frames":
            try:
                shift = int(value)
            except ValueError:
                raise InputError(
                    f"variant {name!r}: audio_shift_frames must be a whole number of frames, "
                    f"got {value!r}"
                ) from None
        elif key == "mute_audio":
            mute = value.strip().lower() in ("1", "true", "yes", "on")
        else:
            overrides.append(item)
    return Variant(name, source, tuple(overrides), shift, mute)


@dataclass
class LoadedInput:
    """An input, read into memory.

    Attributes:
        portrait: what drives the pipeline's renderer (path, ``[H, W, 3]`` uint8 or Portrait).
        audio: the speech (a :class:`~talkingface.pipeline.contracts.Audio`).
        real_frames: uint8 ``[T, H, W, 3]`` frames of the real video, or None.
        real_fps: frame rate of ``real_frames``.
        phones: phone timings of the speech, if known (for the bilabial-closure metric).
        portrait_is_first_frame: the portrait is the real video's first frame (then the
            generated frames are scored against the real ones: self-reenactment).
    """

    portrait: Any
    audio: Any
    real_frames: torch.Tensor | None = None
    real_fps: float | None = None
    phones: list[M.Phone] | None = None
    portrait_is_first_frame: bool = False


@dataclass(frozen=True)
class CompareInput:
    """A named input; ``load`` reads it (called once per comparison, right before use).
    ``path``: the real video of a ``video`` input (what drives ``motion=video`` variants)."""

    name: str
    load: Callable[[], LoadedInput]
    kind: str = "pair"  # "pair" (portrait + clip) or "video" (real video as ground truth)
    path: Path | None = None


def _files(folder: Path, exts: Sequence[str]) -> list[Path]:
    return sorted(p for p in folder.iterdir() if p.is_file() and p.suffix.lower() in exts)


def read_phones(path: str | Path) -> list[M.Phone]:
    """Phone timings from an Audacity-style label file: ``start<TAB>end<TAB>label`` per line,
    seconds. Put it beside the clip as ``<clip>.phones.txt``."""
    phones = []
    for n, line in enumerate(Path(path).read_text(encoding="utf-8").splitlines(), 1):
        if not line.strip():
            continue
        parts = line.split("\t") if "\t" in line else line.split()
        try:
            phones.append(M.Phone(parts[2].strip(), float(parts[0]), float(parts[1])))
        except (IndexError, ValueError):
            raise InputError(
                f"{path}:{n}: expected 'start<TAB>end<TAB>phone' in seconds, got {line!r}"
            ) from None
    return phones


def _phones_beside(clip: Path) -> list[M.Phone] | None:
    side = clip.with_name(clip.stem + ".phones.txt")
    return read_phones(side) if side.exists() else None


def _trim_audio(audio, max_seconds: float | None):
    if max_seconds is None or audio.duration <= max_seconds:
        return audio
    return audio.slice(0, int(round(max_seconds * audio.sample_rate)))


def pair_inputs(
    portraits: Sequence[Path],
    clips: Sequence[Path],
    *,
    pairing: str = "all",
    max_seconds: float | None = None,
) -> list[CompareInput]:
    """Portrait + clip inputs: every portrait with every clip (``all``) or the i-th portrait
    with the i-th clip (``zip``, sorted by name)."""
    if pairing == "all":
        pairs = [(p, c) for p in portraits for c in clips]
    elif pairing == "zip":
        if len(portraits) != len(clips):
            raise InputError(
                f"--pairing zip needs as many portraits as clips, got {len(portraits)} and "
                f"{len(clips)}; use --pairing all or --pair PORTRAIT:CLIP"
            )
        pairs = list(zip(portraits, clips, strict=True))
    else:
        raise InputError(f"--pairing must be 'all' or 'zip', got {pairing!r}")

    def loader(portrait: Path, clip: Path) -> Callable[[], LoadedInput]:
        def load() -> LoadedInput:
            from talkingface.io import load_audio, load_image

            audio = _trim_audio(load_audio(clip), max_seconds)
            return LoadedInput(load_image(portrait), audio, phones=_phones_beside(clip))

        return load

    return [CompareInput(f"{p.stem}+{c.stem}", loader(p, c), "pair") for p, c in pairs]


def video_inputs(
    videos: Sequence[Path], *, portrait: Path | None = None, max_seconds: float | None = None
) -> list[CompareInput]:
    """Real-video inputs: each video's audio (or, for ``motion=video`` variants, its motion)
    drives ``portrait`` (default: the video's first frame) and its frames are the ground
    truth."""

    def loader(video: Path) -> Callable[[], LoadedInput]:
        def load() -> LoadedInput:
            from talkingface.io import load_image, read_video

            max_frames = None
            if max_seconds is not None:
                from talkingface.io import probe_media

                fps = float((probe_media(video).get("video") or {}).get("fps") or 60.0)
                max_frames = int(math.ceil(max_seconds * fps))
            clip = read_video(video, max_frames=max_frames)
            if clip.audio is None:
                raise InputError(
                    f"{video.name} has no audio track: real-video inputs need their own speech"
                )
            image = load_image(portrait) if portrait is not None else clip.frames[0]
            return LoadedInput(
                image,
                _trim_audio(clip.audio, max_seconds),
                real_frames=clip.frames,
                real_fps=float(clip.fps),
                phones=_phones_beside(video),
                portrait_is_first_frame=portrait is None,
            )

        return load

    return [CompareInput(v.stem, loader(v), "video", v) for v in videos]


def discover_inputs(
    data: str | Path,
    *,
    mode: str = "auto",
    pairing: str = "all",
    pairs: Iterable[str] = (),
    portrait: str | Path | None = None,
    max_seconds: float | None = None,
) -> list[CompareInput]:
    """Find the inputs in ``data``.

    ``mode``: ``videos`` (real talking videos in ``data`` or ``data/video``), ``pairs``
    (portraits in ``data`` or ``data/images``, clips in ``data`` or ``data/audio``), or
    ``auto`` (videos if there are any, else pairs). ``pairs`` (``PORTRAIT:CLIP`` items, paths
    relative to ``data`` or absolute) replaces the automatic pairing.
    """
    root = Path(data)
    if not root.is_dir():
        raise InputError(f"--data {root} is not a directory of portraits, clips or videos")

    def pick(sub: str, exts: Sequence[str]) -> list[Path]:
        found = _files(root, exts)
        if (root / sub).is_dir():
            found += _files(root / sub, exts)
        return found

    pairs = list(pairs)
    if pairs:
        out = []
        for item in pairs:
            left, sep, right = item.rpartition(":")
            if not sep or not left:
                raise InputError(f"--pair {item!r} is not PORTRAIT:CLIP")
            p, c = (Path(x) if Path(x).is_absolute() else root / x for x in (left, right))
            for f in (p, c):
                if not f.exists():
                    raise InputError(f"--pair {item!r}: {f} does not exist")
            out += pair_inputs([p], [c], max_seconds=max_seconds)
        return out
    videos = pick("video", VIDEO_EXTS)
    if mode == "videos" or (mode == "auto" and videos):
        if not videos:
            raise InputError(f"no videos ({', '.join(VIDEO_EXTS)}) in {root} or {root}/video")
        return video_inputs(
            videos, portrait=Path(portrait) if portrait else None, max_seconds=max_seconds
        )
    if mode not in ("auto", "pairs"):
        raise InputError(f"--inputs must be auto, videos or pairs, got {mode!r}")
    images, clips = pick("images", IMAGE_EXTS), pick("audio", AUDIO_EXTS)
    if portrait is not None:
        images = [Path(portrait)]
    if not images or not clips:
        raise InputError(
            f"found {len(images)} portraits and {len(clips)} clips in {root} (and its images/ "
            "and audio/ folders): a comparison needs at least one of each, or real videos"
        )
    return pair_inputs(images, clips, pairing=pairing, max_seconds=max_seconds)


# --- measuring faces ----------------------------------------------------------------------


@dataclass
class FaceTrack:
    """Per-frame face measures of a video (NaN where no face was found).

    Attributes:
        mouth: ``[T]`` mouth opening (inner-lip gap / face height).
        eyes: ``[T, 2]`` eye openness (eyelid gap / eye width), left and right.
        pose: ``[T, 3]`` yaw, pitch, roll in radians, from the landmarks.
        boxes: ``[T, 4]`` landmark box x0, y0, x1, y1 in pixels.
        points: ``[T, N, 2]`` landmark positions in pixels (for landmark jitter).
    """

    mouth: np.ndarray
    eyes: np.ndarray
    pose: np.ndarray
    boxes: np.ndarray
    points: np.ndarray

    @property
    def found(self) -> np.ndarray:
        """``[T]`` bool: frames with a face."""
        return np.isfinite(self.mouth)

    @staticmethod
    def concat(parts: list[FaceTrack]) -> FaceTrack:
        return FaceTrack(*(np.concatenate([getattr(p, f) for p in parts]) for f in FIELDS))


FIELDS = ("mouth", "eyes", "pose", "boxes", "points")


class LandmarkTracker:
    """Measures faces on frames with :class:`~talkingface.face.FaceAnalyzer`
    (MediaPipe face mesh, shipped in the wheel: nothing downloads). Callable on uint8
    ``[T, H, W, 3]`` frames, returns a :class:`FaceTrack`."""

    def __init__(self) -> None:
        from talkingface.face import FaceAnalyzer

        self.analyzer = FaceAnalyzer(max_faces=1, static=True, min_face_px=24)

    def __call__(self, frames) -> FaceTrack:
        from talkingface import face
        from talkingface.face import landmarks

        frames = torch.as_tensor(frames)
        t = frames.shape[0]
        points = torch.full((t, landmarks.NUM_LANDMARKS, 3), math.nan)
        for i in range(t):
            found = self.analyzer.detect(frames[i])
            if found:
                points[i] = found[0].points.float()
        boxes = torch.stack(
            [points[..., 0].amin(-1), points[..., 1].amin(-1),
             points[..., 0].amax(-1), points[..., 1].amax(-1)], dim=-1,
        )
        return FaceTrack(
            face.mouth_opening(points).numpy().astype(np.float64),
            face.eye_openness(points).numpy().astype(np.float64),
            face.head_pose(points).numpy().astype(np.float64),
            boxes.numpy().astype(np.float64),
            points[..., :2].numpy().astype(np.float64),
        )

    def close(self) -> None:
        self.analyzer.close()


def resample(
    signal, src_fps: float, dst_fps: float, num: int, *, offset_s: float = 0.0
) -> np.ndarray:
    """Resample a per-frame signal ``[T, ...]`` to ``num`` frames at ``dst_fps`` by linear
    interpolation in time: output frame ``i`` is the signal at ``i / dst_fps + offset_s``
    seconds (NaN frames are skipped; times outside the signal are NaN)."""
    x = np.asarray(signal, dtype=np.float64)
    flat = x.reshape(len(x), -1)
    t_src = np.arange(len(x)) / src_fps
    t_dst = np.arange(num) / dst_fps + offset_s
    out = np.full((num, flat.shape[1]), math.nan)
    for j in range(flat.shape[1]):
        ok = np.isfinite(flat[:, j])
        if ok.sum() >= 2:
            out[:, j] = np.interp(t_dst, t_src[ok], flat[ok, j], left=math.nan, right=math.nan)
    return out.reshape((num, *x.shape[1:]))


# --- results ------------------------------------------------------------------------------


@dataclass
class Row:
    """One metric of one variant on one input (the long format of ``results.csv``)."""

    variant: str
    input: str
    family: str
    metric: str
    value: float
    unit: str
    better: str  # "higher", "lower", "closer to real", "closer to 0" or "" (informative)
    status: str = "ok"
    note: str = ""


@dataclass
class RunRecord:
    """What one variant × input run left for the report."""

    variant: str
    input: str
    status: str = "ok"
    error: str = ""
    fps: float = 25.0
    mouth: np.ndarray | None = None  # [T] measured on the generated (or real) frames
    real_mouth: np.ndarray | None = None  # [T] real video's mouth opening at the same fps
    energy_db: np.ndarray | None = None  # [T] audio loudness per frame
    speed: dict[str, float] = field(default_factory=dict)
    keyframes: dict[str, np.ndarray] = field(default_factory=dict)  # moment -> [h, w, 3] uint8
    keyframe_index: dict[str, int] = field(default_factory=dict)
    strip_times: list[float] = field(default_factory=list)  # seconds of the strip's frames
    strip: list[np.ndarray] = field(default_factory=list)  # [h, w, 3] uint8 thumbnails
    strip_real: list[np.ndarray] = field(default_factory=list)  # the real frames, same geometry


@dataclass
class Comparison:
    """Everything a comparison produced."""

    variants: list[Variant]
    inputs: list[str]
    rows: list[Row] = field(default_factory=list)
    records: list[RunRecord] = field(default_factory=list)

    def status_of(self, variant: str, input_name: str) -> RunRecord | None:
        for rec in self.records:
            if rec.variant == variant and rec.input == input_name:
                return rec
        return None


def one_line(exc: BaseException) -> str:
    """An exception as one line: the user-facing message, or type + message + where for a bug."""
    msg = " ".join(str(exc).split()) or type(exc).__name__
    if isinstance(exc, TalkingFaceError):
        return msg
    tb = traceback.extract_tb(exc.__traceback__)
    where = f" ({Path(tb[-1].filename).name}:{tb[-1].lineno})" if tb else ""
    return f"{type(exc).__name__}: {msg}{where}"


def shift_audio(audio, frames: int, fps: float):
    """The same audio delayed by ``frames`` video frames (advanced if negative), same length:
    silence fills the gap, the overhang is cut."""
    from talkingface.pipeline.contracts import Audio

    x = audio.samples
    n = int(round(abs(frames) * audio.sample_rate / fps))
    n = min(n, x.shape[-1])
    pad = torch.zeros((*x.shape[:-1], n), dtype=x.dtype)
    if frames > 0:
        y = torch.cat([pad, x[..., : x.shape[-1] - n]], dim=-1)
    else:
        y = torch.cat([x[..., n:], pad], dim=-1)
    return Audio(y.contiguous(), audio.sample_rate)


def _mono(audio) -> np.ndarray:
    x = audio.samples.detach().cpu().numpy().astype(np.float64)
    return x.mean(axis=0) if x.ndim == 2 else x


class _MeasuringSink:
    """Pipeline sink that measures frames as they come, keeping only the key-frame
    thumbnails and the few full frames the fidelity metrics need (memory stays bounded)."""

    def __init__(self, tracker, keep: set[int], picker: KeyFramePicker) -> None:
        self.tracker, self.keep, self.picker = tracker, keep, picker
        self.tracks: list[FaceTrack] = []
        self.kept: dict[int, torch.Tensor] = {}
        self.count = 0

    def write(self, frames) -> None:
        data = frames.to_uint8()
        track = self.tracker(data)
        self.tracks.append(track)
        self.picker.update(track, data, self.count)
        for i in range(data.shape[0]):
            if self.count + i in self.keep:
                self.kept[self.count + i] = data[i].clone()
        self.count += data.shape[0]

    def close(self):
        return None


def _thumbnails(frames: torch.Tensor, size: int = THUMB) -> torch.Tensor:
    x = frames.permute(0, 3, 1, 2).float()
    h, w = x.shape[-2:]
    scale = size / max(h, w)
    x = torch.nn.functional.interpolate(
        x, size=(max(1, round(h * scale)), max(1, round(w * scale))), mode="area"
    )
    return x.round().clamp(0, 255).to(torch.uint8).permute(0, 2, 3, 1)


class KeyFramePicker:
    """Picks the key moments chunk by chunk, keeping one thumbnail per moment (memory stays
    flat for long clips): ``rest`` (middle of the longest silence of 200 ms or more, else frame
    0), ``open vowel`` (widest mouth), ``bilabial`` (narrowest mouth while the audio is
    speech), ``blink`` (lowest eye openness).

    Args:
        energy_db: ``[T]`` audio loudness per frame (:func:`metrics.frame_energy_db`).
        fps: frame rate.
    """

    def __init__(self, energy_db: np.ndarray, fps: float) -> None:
        spans = M.silences(energy_db, fps, min_ms=200)
        if spans:
            a, b = max(spans, key=lambda s: s[1] - s[0])
            self.rest = (a + b) // 2
        else:
            self.rest = 0
        self.speaking = ~M.silence_mask(energy_db)
        self.best: dict[str, tuple[float, int, np.ndarray]] = {}

    def _offer(self, moment: str, score: float, index: int, frame: torch.Tensor) -> None:
        if math.isfinite(score) and (moment not in self.best or score < self.best[moment][0]):
            self.best[moment] = (score, index, _thumbnails(frame[None])[0].numpy())

    def update(self, track: FaceTrack, frames: torch.Tensor, start: int) -> None:
        """Consider ``frames`` (uint8 ``[t, H, W, 3]``, measured as ``track``), the frames
        ``start .. start + t`` of the video."""
        t = len(track.mouth)
        if start <= self.rest < start + t:
            self._offer("rest", 0.0, self.rest, frames[self.rest - start])
        mouth = track.mouth
        if np.isfinite(mouth).any():
            i = int(np.nanargmax(mouth))
            self._offer("open vowel", -mouth[i], start + i, frames[i])
            speaking = np.zeros(t, dtype=bool)
            seg = self.speaking[start : start + t]
            speaking[: len(seg)] = seg
            m = np.where(speaking, mouth, math.nan)
            if np.isfinite(m).any():
                i = int(np.nanargmin(m))
                self._offer("bilabial", m[i], start + i, frames[i])
        if np.isfinite(track.eyes).any():
            eyes = np.nanmean(np.where(np.isfinite(track.eyes), track.eyes, math.nan), axis=1)
            if np.isfinite(eyes).any():
                i = int(np.nanargmin(eyes))
                self._offer("blink", eyes[i], start + i, frames[i])

    def store(self, rec: RunRecord) -> None:
        """Put the chosen frame indices and thumbnails into ``rec``."""
        order = [k for k in KEY_MOMENTS if k in self.best]
        rec.keyframe_index = {k: self.best[k][1] for k in order}
        rec.keyframes = {k: self.best[k][2] for k in order}


# --- metrics of one run -------------------------------------------------------------------


def av_window(num_frames: int, fps: float) -> int:
    """Frames searched each way for an audio-visual offset: 1 s, but at most a quarter of the
    clip (a longer lag would correlate too few frames to mean anything)."""
    return max(1, min(round(AV_WINDOW_S * fps), num_frames // 4))


def motion_rows(track: FaceTrack, energy_db: np.ndarray, fps: float) -> list[tuple]:
    """(family, metric, value, unit, better, note) for the motion and lip-sync-vs-audio
    metrics that need no ground truth."""
    out = []
    found = track.found
    out.append(("detect", "face_found", float(found.mean()) if len(found) else math.nan,
                "fraction", "higher", ""))
    lag, ms, r = M.av_offset(energy_db[: len(track.mouth)], track.mouth, fps,
                             max_lag=av_window(len(track.mouth), fps))
    out += [
        ("lipsync", "av_offset_frames", lag, "frames", "closer to 0",
         "best lag of audio energy vs mouth opening; + = video late"),
        ("lipsync", "av_offset_ms", ms, "ms", "closer to 0", ""),
        ("lipsync", "av_corr", r, "r", "higher",
         "correlation of energy and mouth at that lag"
         + ("; weak (< 0.2): the offset is unreliable" if r < 0.2 else "")),
        ("motion", "delta_p", M.delta_p(track.pose), "deg/frame", "closer to real",
         "VASA-1 ΔP from landmark head pose"),
        ("motion", "jitter_pose", M.jitter(np.degrees(track.pose)), "deg/frame²",
         "lower", ""),
    ]
    height = np.nanmedian(track.boxes[:, 3] - track.boxes[:, 1]) if found.any() else math.nan
    out.append(("motion", "jitter_landmarks", M.jitter(track.points / height) * 100,
                "% face height/frame²", "lower", ""))
    blinks = M.blinks(track.eyes, fps)
    out += [
        ("motion", "blink_rate", blinks.per_minute, "1/min", "closer to real",
         f"{blinks.count} blinks"),
        ("motion", "blink_duration", blinks.mean_duration_ms, "ms", "closer to real", ""),
    ]
    spans = M.silences(energy_db[: len(track.mouth)], fps, min_ms=300)
    std, move = M.silent_lip_stability(track.mouth, spans)
    note = f"{len(spans)} silences ≥ 300 ms" if spans else "no silence ≥ 300 ms in the audio"
    out += [
        ("motion", "silent_lip_std", std * 100, "% face height", "lower", note),
        ("motion", "silent_lip_move", move * 100, "% face height/frame", "lower", ""),
    ]
    return out


def _reference_image(result, portrait_pixels: torch.Tensor, size: tuple[int, int]):
    crop = result.prepared.crop if result.prepared is not None else None
    if crop is not None and tuple(crop.image.shape[:2]) == size:
        return crop.image, crop.landmarks.box()
    if tuple(portrait_pixels.shape[:2]) == size:
        return portrait_pixels, None
    x = portrait_pixels.permute(2, 0, 1)[None].float()
    x = torch.nn.functional.interpolate(x, size=size, mode="bilinear", align_corners=False)
    return x[0].permute(1, 2, 0).round().clamp(0, 255).to(torch.uint8), None


def fidelity_rows(
    kept: dict[int, torch.Tensor], rest: list[int], sampled: list[int], reference, face_box
) -> list[tuple]:
    """PSNR/SSIM of the background (outside the head box) over ``sampled`` frames and of the
    face box over the ``rest`` frames (silences), both against the portrait as rendered."""
    ref = reference.numpy()
    size = ref.shape[:2]
    if face_box is None:
        return [("fidelity", m, math.nan, u, "higher", "no face found on the portrait")
                for m, u in (("bg_psnr", "dB"), ("bg_ssim", ""), ("face_rest_psnr", "dB"),
                             ("face_rest_ssim", ""))]
    bg = M.box_mask(size, M.head_box(face_box, size), inside=False)
    face = M.box_mask(size, face_box)

    def mean(metric, idx, mask):
        vals = [metric(kept[i].numpy(), ref, mask) for i in idx if i in kept]
        vals = [v for v in vals if not math.isnan(v)]  # NaN: an empty mask
        return float(np.mean(vals)) if vals else math.nan

    note_rest = f"{len(rest)} silent frames" if rest else "no silence: first frame"
    rest = rest or [0]
    return [
        ("fidelity", "bg_psnr", mean(M.psnr, sampled, bg), "dB", "higher",
         "outside the head box, vs the portrait"),
        ("fidelity", "bg_ssim", mean(M.ssim, sampled, bg), "", "higher", ""),
        ("fidelity", "face_rest_psnr", mean(M.psnr, rest, face), "dB", "higher", note_rest),
        ("fidelity", "face_rest_ssim", mean(M.ssim, rest, face), "", "higher", ""),
    ]


def _evenly(n: int, k: int) -> list[int]:
    return sorted({int(i) for i in np.linspace(0, n - 1, min(n, k)).round()}) if n else []


def _num_frames(audio, fps: float) -> int:
    from talkingface.pipeline.contracts import num_frames_for

    return num_frames_for(audio.num_samples, audio.sample_rate, fps)


def measure_start_latency(pipe, portrait, audio, seconds: float = 1.0) -> float:
    """Streaming start latency (first audio in to first frame out, ms) on the first
    ``seconds`` of the clip; NaN when the pipeline reports none."""
    clip = audio.slice(0, int(seconds * audio.sample_rate))
    for _ in pipe.stream(portrait, clip):
        pass
    lat = pipe.last_profile.start_latency_ms
    return float(lat) if lat is not None else math.nan


class ComparisonRunner:
    """Runs every variant on every input.

    Args:
        variants: the pipeline variants.
        inputs: the inputs (:func:`discover_inputs`).
        seed: seed given to every variant (``seed=N`` override), so they differ only by config.
        pipeline_factory: ``(source, overrides) -> pipeline``; default
            :meth:`talkingface.api.Pipeline.from_config`.
        tracker: frames -> :class:`FaceTrack`; default :class:`LandmarkTracker`.
        stream_latency: also run each variant in streaming mode on the first second of the
            first input to measure its start latency.
        align_real: take a real video's own audio-visual offset (its mouth vs its loudness,
            searched within ±1 s, used when that correlation is at least 0.2) out of the
            ground truth before correlating. Off by default: the files' own timing is the
            truth, and the ±3-frame lag search absorbs small offsets. On short clips this
            loudness-based estimate is unreliable and favours loudness-driven variants: on
            two 5-6 s evaluation videos it found -0.52 and -0.6 s, where the lips close on
            the recognised p/b/m at 0 ± 0.08 s. Use it only for videos known to be offset.
        progress: show a tqdm progress bar.
    """

    def __init__(
        self,
        variants: Sequence[Variant],
        inputs: Sequence[CompareInput],
        *,
        seed: int | None = 0,
        pipeline_factory: Callable[[str, list[str]], Any] | None = None,
        tracker: Callable[[Any], FaceTrack] | None = None,
        stream_latency: bool = True,
        align_real: bool = False,
        progress: bool = True,
    ) -> None:
        names = [v.name for v in variants]
        dup = {n for n in names if names.count(n) > 1} | ({REAL} & set(names))
        if dup:
            raise InputError(f"variant names must be unique and not {REAL!r}: {sorted(dup)}")
        if not variants:
            raise InputError("give at least one --variant NAME=OVERRIDES (e.g. default=)")
        if not inputs:
            raise InputError("no inputs to compare")
        self.variants, self.inputs = list(variants), list(inputs)
        self.seed = seed
        self.factory = pipeline_factory or _default_factory
        self.tracker = tracker
        self.stream_latency = stream_latency
        self.align_real = align_real
        self.progress = progress
        self._pipes: dict[Any, Any] = {}
        self._latency: dict[str, float] = {}
        self._lpips: tuple[Callable | None, str] | None = None

    def _pipeline(self, variant: Variant, item: CompareInput):
        """The variant's pipeline; a ``motion=video`` variant without a driver of its own gets
        one per real-video input, driven by that video (self-reenactment)."""
        overrides, key = list(variant.overrides), variant.name
        if RE.drives_from_video(overrides) and not RE.sets_driver(overrides):
            if item.path is None:
                raise InputError(
                    f"variant {variant.name!r} takes its motion from a video (motion=video): it "
                    "needs real-video inputs (--inputs videos), or a driver of its own "
                    "(motion.params.path=VIDEO)"
                )
            overrides.append(f"motion.params.path={item.path}")
            key = (variant.name, item.name)
            # one driven pipeline per video at a time: the previous input's is done with
            for done in [k for k in self._pipes if isinstance(k, tuple) and k[0] == variant.name
                         and k != key]:
                del self._pipes[done]
        if key not in self._pipes:
            if self.seed is not None:
                overrides.append(f"seed={self.seed}")
            if variant.mute_audio:
                overrides.append("allow_silent=true")
            try:
                self._pipes[key] = self.factory(variant.source, overrides)
            except Exception as exc:  # kept: every input of this variant reports it
                self._pipes[key] = exc
        pipe = self._pipes[key]
        if isinstance(pipe, Exception):
            raise pipe
        return pipe

    def run(self) -> Comparison:
        """Run everything; never raises for a failing variant or input (see ``status``)."""
        if self.tracker is None:
            self.tracker = LandmarkTracker()
        comp = Comparison(self.variants, [i.name for i in self.inputs])
        bar = None
        if self.progress:
            from tqdm import tqdm

            total = len(self.inputs) * len(self.variants)
            bar = tqdm(total=total, unit="run", desc="compare", leave=False)
        try:
            for item in self.inputs:
                self._run_input(item, comp, bar)
        finally:
            if bar is not None:
                bar.close()
            close = getattr(self.tracker, "close", None)
            if close is not None:
                close()
        return comp

    def _run_input(self, item: CompareInput, comp: Comparison, bar) -> None:
        try:
            loaded = item.load()
        except Exception as exc:
            err = one_line(exc)
            for v in self.variants:
                comp.records.append(RunRecord(v.name, item.name, "error", f"input: {err}"))
                if bar is not None:
                    bar.update(1)
            return
        real = None
        if loaded.real_frames is not None:
            real = self._measure_real(item, loaded, comp)
        for variant in self.variants:
            if bar is not None:
                bar.set_postfix_str(f"{variant.name} / {item.name}"[:40])
            rec = RunRecord(variant.name, item.name)
            try:
                self._run_one(variant, item, loaded, real, rec, comp)
            except Exception as exc:
                rec.status, rec.error = "error", one_line(exc)
            comp.records.append(rec)
            if bar is not None:
                bar.update(1)

    def _measure_real(self, item: CompareInput, loaded: LoadedInput, comp: Comparison):
        """Measure the real video: its curves feed the lip-sync metrics, its rows are the
        reference values of the motion metrics. Returns ``(track, fps, offset_s)``, where
        ``offset_s`` is the real video's own audio-visual offset to take out of the ground
        truth (0 unless ``align_real`` and the estimate is trustworthy)."""
        fps = float(loaded.real_fps)
        rec = RunRecord(REAL, item.name, fps=fps)
        try:
            track = self.tracker(loaded.real_frames)
            energy = M.frame_energy_db(
                _mono(loaded.audio), loaded.audio.sample_rate, fps, len(track.mouth)
            )
            rec.mouth, rec.energy_db = track.mouth, energy
            for fam, metric, value, unit, better, note in motion_rows(track, energy, fps):
                comp.rows.append(Row(REAL, item.name, fam, metric, value, unit, better, "ok",
                                     note))
            picker = KeyFramePicker(energy, fps)
            picker.update(track, loaded.real_frames, 0)
            picker.store(rec)
            offset_s = 0.0
            if self.align_real:
                lag, _, r = M.av_offset(energy, track.mouth, fps,
                                        max_lag=av_window(len(track.mouth), fps))
                if math.isfinite(r) and r >= ALIGN_MIN_R:
                    offset_s = lag / fps
            if loaded.phones:
                # The real lips on the same phones: how far the phone timings can be trusted.
                moved = [M.Phone(p.label, p.start + offset_s, p.end + offset_s)
                         for p in loaded.phones]
                rate, why = M.bilabial_closure_rate(track.mouth, moved, fps)
                comp.rows.append(Row(REAL, item.name, "lipsync", "bilabial_closure", rate,
                                     "fraction", "higher", "ok", why))
        except Exception as exc:
            rec.status, rec.error = "error", one_line(exc)
            track = None
        comp.records.append(rec)
        return (track, fps, offset_s) if track is not None else None

    def _run_one(self, variant, item, loaded, real, rec: RunRecord, comp: Comparison) -> None:
        pipe = self._pipeline(variant, item)
        fps = float(pipe.config.fps)
        rec.fps = fps
        audio = loaded.audio
        drive = audio
        if variant.audio_shift_frames:
            drive = shift_audio(drive, variant.audio_shift_frames, fps)
        if variant.mute_audio:
            from talkingface.pipeline.contracts import Audio

            drive = Audio(torch.zeros_like(audio.samples), audio.sample_rate)
        n = _num_frames(audio, fps)
        energy = M.frame_energy_db(_mono(audio), audio.sample_rate, fps, n)
        rest = [i for a, b in M.silences(energy, fps, min_ms=300) for i in range(a, b)]
        rest = rest[:: max(1, len(rest) // FIDELITY_FRAMES)][:FIDELITY_FRAMES]
        sampled = _evenly(n, FIDELITY_FRAMES)
        reenacted = real is not None and loaded.portrait_is_first_frame
        strip = _evenly(n, STRIP_FRAMES) if reenacted else []
        picker = KeyFramePicker(energy, fps)
        sink = _MeasuringSink(self.tracker, set(rest) | set(sampled) | set(strip) | {0}, picker)
        result = pipe.run(loaded.portrait, drive, sink=sink)
        if not sink.tracks:
            raise RuntimeError("the pipeline produced no frames")
        track = FaceTrack.concat(sink.tracks)
        energy = energy[: len(track.mouth)]
        rec.mouth, rec.energy_db = track.mouth, energy
        rows = motion_rows(track, energy, fps)

        if real is not None:
            real_track, real_fps, offset_s = real
            gt = resample(real_track.mouth, real_fps, fps, len(track.mouth), offset_s=offset_s)
            rec.real_mouth = gt
            r, lag = M.best_lag_correlation(gt, track.mouth, max_lag=3, min_std=STILL_MOUTH_STD)
            note = "Pearson r of mouth opening vs the real video, best lag within ±3 frames"
            if offset_s:
                note += (f"; real video realigned by its own AV offset "
                         f"({1000 * offset_s:+.0f} ms)")
            if r == 0.0 and lag == 0:
                note += "; the mouth does not move"
            rows += [
                ("lipsync", "mouth_corr", r, "r", "higher", note),
                ("lipsync", "mouth_lag", float(lag) if math.isfinite(r) else math.nan,
                 "frames", "closer to 0",
                 "+ = generated mouth late"),
            ]
        if loaded.phones:
            rate, why = M.bilabial_closure_rate(track.mouth, loaded.phones, fps)
        else:
            rate, why = math.nan, "no phone timings for this input (add <clip>.phones.txt)"
        rows.append(("lipsync", "bilabial_closure", rate, "fraction", "higher", why))

        portrait_pixels = _portrait_pixels(result)
        size = tuple(sink.kept[0].shape[:2])
        reference, face_box = _reference_image(result, portrait_pixels, size)
        if face_box is None:
            ref_track = self.tracker(reference[None])
            if ref_track.found[0]:
                face_box = tuple(ref_track.boxes[0])
        rows += fidelity_rows(sink.kept, rest, sampled, reference, face_box)
        if reenacted:
            rows += self._reenact_rows(loaded, real, track, sink, result, fps, sampled, strip, rec)

        rec.speed = M.speed_summary(result.profile)
        _processing_speed(rec.speed, result.profile)
        if self.stream_latency and variant.name not in self._latency:
            try:
                self._latency[variant.name] = measure_start_latency(pipe, loaded.portrait, drive)
            except Exception as exc:  # the batch results stand; say why latency is missing
                self._latency[variant.name] = math.nan
                rows.append(("speed", "start_latency_ms", math.nan, "ms", "lower",
                             f"streaming failed: {one_line(exc)}"))
        rec.speed["start_latency_ms"] = self._latency.get(variant.name, math.nan)
        for key, value in rec.speed.items():
            unit, better = _SPEED_UNITS.get(
                key, ("ms", "lower") if key.startswith("ms_total.") else ("ms/frame", "lower")
            )
            if not any(r[1] == key for r in rows):
                rows.append(("speed", key, value, unit, better, ""))

        picker.store(rec)
        for fam, metric, value, unit, better, note in rows:
            comp.rows.append(Row(variant.name, item.name, fam, metric, float(value), unit,
                                 better, "ok", note))


    def _reenact_rows(self, loaded, real, track, sink, result, fps, sampled, strip, rec):
        """Self-reenactment scores of one run against the real frames (see
        :mod:`talkingface.compare.reenact`), and the frames of the report's strip."""
        real_track, real_fps, _ = real
        frames = loaded.real_frames
        size = tuple(sink.kept[0].shape[:2])
        geometry, why = RE.Geometry.of(result, size, tuple(frames.shape[1:3]))
        if geometry is None:
            return [("reenact", m, math.nan, u, b, why) for m, u, b in REENACT_METRICS]

        def at(i: int) -> int | None:
            j = RE.real_index(i, fps, real_fps)
            return j if j < min(len(frames), len(real_track.points)) else None

        pairs = [(sink.kept[i], geometry.real_image(frames[at(i)]))
                 for i in sampled if i in sink.kept and at(i) is not None]
        if self._lpips is None:
            self._lpips = RE.local_lpips()
        scorer, lpips_note = self._lpips
        pixels = RE.pixel_scores(pairs, scorer)
        both = [(i, at(i)) for i in range(len(track.points)) if at(i) is not None]
        marks = RE.landmark_errors(geometry.to_real(track.points[[i for i, _ in both]]),
                                   real_track.points[[j for _, j in both]])
        shown = [i for i in strip if i in sink.kept and at(i) is not None]
        rec.strip_times = [i / fps for i in shown]
        rec.strip = [_thumbnails(sink.kept[i][None])[0].numpy() for i in shown]
        rec.strip_real = [_thumbnails(geometry.real_image(frames[at(i)])[None])[0].numpy()
                          for i in shown]
        where = "the whole frame" if geometry.is_identity(frames.shape[1:3]) else "the face crop"
        return [
            ("reenact", "psnr", pixels["psnr"], "dB", "higher",
             f"vs the real frame at the same time, {len(pairs)} frames, {where}"),
            ("reenact", "ssim", pixels["ssim"], "", "higher", ""),
            ("reenact", "lpips", pixels["lpips"], "", "lower", lpips_note),
            ("reenact", "lmk_all", marks["lmk_all"], "IOD", "lower",
             f"{int(marks['frames'])} frames; all points as placed (pose and expression), "
             "in inter-ocular distances"),
            ("reenact", "lmk_mouth", marks["lmk_mouth"], "IOD", "lower",
             "lip points after a similarity alignment on the upper face and nose"),
            ("reenact", "lmk_eyes", marks["lmk_eyes"], "IOD", "lower",
             "eye points after a similarity alignment on the upper face and nose"),
        ]


REENACT_METRICS = (
    ("psnr", "dB", "higher"), ("ssim", "", "higher"), ("lpips", "", "lower"),
    ("lmk_all", "IOD", "lower"), ("lmk_mouth", "IOD", "lower"), ("lmk_eyes", "IOD", "lower"),
)
"""(metric, unit, better) of the self-reenactment family."""

_SPEED_UNITS = {
    "fps": ("frames/s", "higher"),
    "real_time_factor": ("x real time", "lower"),
    "start_latency_ms": ("ms", "lower"),
    "peak_mem_mb": ("MB", "lower"),
}


def _processing_speed(speed: dict[str, float], profile) -> None:
    """fps and real-time factor of the stages alone: the profile's wall time includes our
    measuring sink, which is not part of the pipeline being compared."""
    frames, audio_s = profile.frames, profile.audio_s
    if not frames:
        return
    sink_ms = sum(row["total_ms"] for row in profile.rows() if row["kind"] == "sink")
    wall_s = profile.wall_s - sink_ms / 1000.0
    if wall_s > 0:
        speed["fps"] = frames / wall_s
        if audio_s:
            speed["real_time_factor"] = wall_s / audio_s


def _portrait_pixels(result) -> torch.Tensor:
    return result.prepared.portrait.pixels


def _default_factory(source: str, overrides: list[str]):
    from talkingface.api import Pipeline

    return Pipeline.from_config(source, overrides=overrides)
