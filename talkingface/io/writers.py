"""Writers: the talking-face MP4 (H.264 + AAC, trimmed to the audio, with provenance tags), plain
or fragmented for pipes, and PNG frame dumps."""

from __future__ import annotations

import contextlib
import math
import os
import secrets
import warnings
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import BinaryIO

import av
import numpy as np
import PIL.Image
import PIL.PngImagePlugin
import torch

from talkingface.io._common import DECODE_ERRORS
from talkingface.io.provenance import container_tags
from talkingface.pipeline.contracts import Audio, Frames, num_frames_for
from talkingface.pipeline.errors import ConfigError, InputError

X264_PRESETS = (
    "ultrafast",
    "superfast",
    "veryfast",
    "faster",
    "fast",
    "medium",
    "slow",
    "slower",
    "veryslow",
)
"""libx264 speed presets, fastest first (slower ones give smaller files at the same crf)."""

# Sample rates the AAC encoder accepts as they are; anything else is encoded at 48 kHz.
def _new_file_beside(path: Path, suffix: str) -> Path:
    """A new, empty, uniquely named hidden file in ``path``'s folder, created with the mode a
    plain ``open()`` gives (0666 less the umask; ``tempfile.mkstemp`` would make it 0600, and
    the finished video, renamed over ``path``, would stay readable by its owner only)."""
    for _ in range(100):
        candidate = path.parent / f".{path.stem}.{secrets.token_hex(6)}{suffix}"
        try:
            os.close(os.open(candidate, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o666))
        except FileExistsError:
            continue
        return candidate
    raise FileExistsError(f"no free temporary name beside {path}")


_AAC_RATES = (8000, 11025, 12000, 16000, 22050, 24000, 32000, 44100, 48000, 64000, 88200, 96000)



@dataclass(frozen=True)
class WriteResult:
    """What :meth:`VideoWriter.close` wrote.

    Attributes:
        path: the output path (None when writing to a file object).
        frames: video frames in the file.
        video_duration: seconds of video (the last frame is shortened to end with the audio).
        audio_duration: seconds of audio (None without audio).
    """

    path: Path | None
    frames: int
    video_duration: float
    audio_duration: float | None


class VideoWriter:
    """Encode frames to an MP4 (H.264 yuv420p + AAC) as they arrive; memory stays bounded.

    With ``audio``, the video is trimmed to ``ceil(duration * fps)`` frames and its last frame
    is shortened so that video and audio end together; frames beyond that are dropped. If
    fewer frames arrive, the last one is held until the audio ends (with a warning). With
    ``audio_rate`` instead, the sound track arrives piece by piece through :meth:`write_audio`
    (live audio, or a file decoded as it streams), so it is never held whole; its end is
    known only at :meth:`close`, which holds the last frame up to it as above (frames beyond
    it are kept, with a warning).

    A path is written through a temporary file in the same directory, moved into place by
    :meth:`close`; on an exception inside ``with`` the partial file is removed and an earlier
    file at ``path`` stays as it was. A binary file object (``sys.stdout.buffer``, BytesIO)
    is written to directly: use ``fragmented=True`` for anything that cannot seek.

    Args:
        path: ``.mp4``/``.m4v``/``.mov`` path or a writable binary file object.
        fps: frame rate.
        size: ``(height, width)`` of the frames; both must be even (yuv420p halves chroma).
        audio: the sound track (mono ``[S]``), muxed as AAC at its own rate when AAC supports
            that rate, else at 48 kHz.
        audio_rate: instead of ``audio``: the sample rate of a sound track given in pieces
            with :meth:`write_audio`.
        metadata: extra container tags (e.g. ``pipeline``, ``config``). ``comment`` and
            ``generator`` always carry the provenance note; ``title`` defaults to it.
        crf: x264 constant rate factor (18 = visually lossless, 23 = x264's default).
        preset: x264 speed preset (``ultrafast`` .. ``veryslow``).
        fragmented: write a fragmented MP4 (``frag_keyframe+empty_moov+delay_moov+
            default_base_moof``, a keyframe every second) that players can read while it is
            being written (from the end of the first fragment on); its tracks are timed as in
            the plain MP4 (edit lists, so the AAC priming is skipped).
    """

    def __init__(
        self,
        path: str | Path | BinaryIO,
        fps: float,
        size: tuple[int, int],
        *,
        audio: Audio | None = None,
        audio_rate: int | None = None,
        metadata: dict[str, str] | None = None,
        crf: int = 18,
        preset: str = "veryfast",
        fragmented: bool = False,
    ) -> None:
        height, width = int(size[0]), int(size[1])
        if height <= 0 or width <= 0 or height % 2 or width % 2:
            raise InputError(
                f"H.264 (yuv420p) needs an even frame width and height, got {width}x{height}: "
                "crop or pad the frames by one pixel"
            )
        if not (isinstance(fps, (int, float)) and math.isfinite(fps) and fps > 0):
            raise InputError(f"fps must be a positive number, got {fps!r}")
        if preset not in X264_PRESETS:
            raise ConfigError(
                f"unknown x264 preset {preset!r}: use one of {', '.join(X264_PRESETS)}"
            )
        if not (isinstance(crf, int) and 0 <= crf <= 51):
            raise ConfigError(f"crf must be an int in 0..51 (18 = visually lossless), got {crf!r}")
        if audio is not None and audio.samples.ndim != 1:
            raise InputError(f"the sound track must be mono [S], got {tuple(audio.samples.shape)}")
        if audio is not None and audio_rate is not None:
            raise InputError("give the sound track whole (audio=) or its rate for write_audio "
                             "(audio_rate=), not both")
        if audio_rate is not None and not (isinstance(audio_rate, int) and audio_rate > 0):
            raise InputError(f"audio_rate must be a positive int (Hz), got {audio_rate!r}")
        self.fps = float(fps)
        self.size = (height, width)
        self.audio = audio
        self.audio_rate = audio.sample_rate if audio is not None else audio_rate
        self._audio_live = audio_rate is not None  # the track comes through write_audio
        self._audio_parts: list[np.ndarray] = []  # received, not yet encoded (views, no copies)
        self._audio_received = 0
        self.frames_written = 0
        self.frames_dropped = 0
        self.result: WriteResult | None = None  # what close() returned (also after ``with``)
        self._closed = False
        self._last_frame: np.ndarray | None = None
        self._pending = None  # the newest video packet, held back to fix its duration at close
        self._max_frames = (
            None if audio is None else num_frames_for(audio.num_samples, audio.sample_rate, fps)
        )
        if isinstance(path, (str, Path)):
            self.path: Path | None = Path(path)
            if self.path.suffix.lower() not in (".mp4", ".m4v", ".mov"):
                raise InputError(f"cannot write {self.path}: name the output file .mp4")
            if self.path.is_dir():
                raise InputError(f"cannot write {self.path}: it is a directory, give a file name")
            self.path.parent.mkdir(parents=True, exist_ok=True)
            tmp = _new_file_beside(self.path, ".partial.mp4")
            self._tmp: Path | None = tmp
            target: str | BinaryIO = tmp
        else:
            seekable = getattr(path, "seekable", None)
            if not fragmented and not (seekable is not None and seekable()):
                raise InputError(
                    "a plain MP4 needs a seekable output (its index is written last): "
                    "pass fragmented=True to write to a pipe or stdout"
                )
            self.path, self._tmp, target = None, None, path
        movflags = "use_metadata_tags"  # without it MP4 drops every tag it has no atom for
        if fragmented:
            # delay_moov: the header waits for the first fragment, so the muxer knows where
            # each track starts and writes edit lists (as in a plain MP4) that skip the AAC
            # encoder's priming and the video's B-frame delay. Without it, fragmented output
            # shifts both tracks instead and plays the priming as sound: audio and video
            # both start 0.08 s late and the audio track is 1024 samples too long.
            movflags += "+frag_keyframe+empty_moov+delay_moov+default_base_moof"
        elif self._tmp is not None:
            movflags += "+faststart"  # moov first: browsers can start playing before the end
        try:
            self._container = av.open(
                target, mode="w", format="mp4", options={"movflags": movflags}
            )
            self._container.metadata.update(container_tags(metadata))
            rate = Fraction(self.fps).limit_denominator(1001)
            self._video = self._container.add_stream("libx264", rate=rate)
            self._video.width, self._video.height = width, height
            self._video.pix_fmt = "yuv420p"
            # Convert and tag as BT.709 (limited range): untagged files are read as BT.601 by
            # some players and BT.709 by others, which shifts colours.
            context = self._video.codec_context
            context.colorspace = context.color_primaries = context.color_trc = 1  # BT.709
            context.color_range = 1  # limited ("tv") range
            self._video.options = {"crf": str(crf), "preset": preset}
            if fragmented:
                self._video.codec_context.gop_size = max(1, round(self.fps))
            self._audio_stream = None
            self._audio_sent = 0
            if self.audio_rate is not None:
                rate = self.audio_rate
                rate_out = rate if rate in _AAC_RATES else 48000
                self._audio_stream = self._container.add_stream("aac", rate=rate_out)
                self._audio_stream.layout = "mono"
                self._audio_stream.bit_rate = 96000
            if audio is not None:
                self._append_audio(audio.samples.detach().float().cpu().numpy())
            # Opens the encoders and writes the header now: bad options fail here, not midway,
            # and the muxer's time base (needed at close) is known.
            self._container.start_encoding()
        except BaseException:
            self._discard()
            raise

    def __enter__(self) -> VideoWriter:
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc_type is None:
            self.close()
        else:
            self._discard()

    def write(self, frames: Frames | torch.Tensor | np.ndarray) -> None:
        """Encode a chunk: ``[T, H, W, 3]`` (or one ``[H, W, 3]`` frame), uint8 or float 0..1."""
        if self._closed:
            raise RuntimeError("VideoWriter.write after close")
        data = _frames_to_uint8(frames)
        if tuple(data.shape[1:3]) != self.size:
            raise InputError(
                f"frames are {data.shape[2]}x{data.shape[1]} but the writer was opened for "
                f"{self.size[1]}x{self.size[0]}: give every chunk the same size"
            )
        if self._max_frames is not None:
            room = self._max_frames - self.frames_written
            self.frames_dropped += max(0, data.shape[0] - room)
            data = data[: max(0, room)]
        for frame in data:
            self._encode_frame(frame)

    def _encode_frame(self, frame: np.ndarray) -> None:
        video_frame = av.VideoFrame.from_ndarray(frame, format="rgb24").reformat(
            format="yuv420p", dst_colorspace="ITU709"
        )
        video_frame.pts = self.frames_written
        self._mux_video(self._video.encode(video_frame))
        self.frames_written += 1
        self._last_frame = frame
        # Feed the sound up to the current video time, so the two tracks interleave (a pipe
        # reader gets both as it goes, and the muxer never queues a whole track in memory).
        self._send_audio(self.frames_written / self.fps)

    def _mux_video(self, packets) -> None:
        for packet in packets:
            if self._pending is not None:
                self._container.mux(self._pending)
            self._pending = packet

    def write_audio(self, audio: Audio | np.ndarray | torch.Tensor) -> None:
        """Append the next piece of the sound track (mono ``[S]`` float in -1..1) to a writer
        opened with ``audio_rate``; it is encoded as the video reaches it."""
        if self._closed:
            raise RuntimeError("VideoWriter.write_audio after close")
        if not self._audio_live:
            raise InputError("write_audio needs a writer opened with audio_rate= "
                             "(this one has its whole sound track, or none)")
        if isinstance(audio, Audio):
            if audio.sample_rate != self.audio_rate:
                raise InputError(f"audio piece at {audio.sample_rate} Hz, but the writer was "
                                 f"opened for {self.audio_rate} Hz: resample it first")
            audio = audio.samples
        # A copy: the caller may reuse its buffer for the next piece (live capture does).
        data = np.array(torch.as_tensor(audio).detach().float().cpu().numpy(), copy=True)
        if data.ndim != 1:
            raise InputError(f"the sound track must be mono [S], got {tuple(data.shape)}")
        self._append_audio(data)

    def trim_audio_to_video(self) -> None:
        """Drop the sound received beyond the frames written so far, so that :meth:`close`
        ends the file where its pictures end (a live stream stopped early) instead of holding
        the last frame until the sound's end. Sound already encoded stays."""
        if not self._audio_live:
            raise InputError("trim_audio_to_video needs a writer opened with audio_rate=")
        video_end = round(self.frames_written / self.fps * self.audio_rate)
        keep = max(self._audio_sent, min(self._audio_received, video_end))
        excess = self._audio_received - keep
        while excess > 0:
            last = self._audio_parts[-1]
            if last.size <= excess:
                self._audio_parts.pop()
                excess -= last.size
            else:
                self._audio_parts[-1] = last[: last.size - excess]
                excess = 0
        self._audio_received = keep

    def _append_audio(self, samples: np.ndarray) -> None:
        if samples.size:
            self._audio_parts.append(samples)
            self._audio_received += samples.size

    def _take_audio(self, count: int) -> np.ndarray:
        """The next ``count`` received samples, removed from the queue."""
        taken, need = [], count
        while need:
            part = self._audio_parts[0]
            taken.append(part[:need])
            if part.size > need:
                self._audio_parts[0] = part[need:]
                need = 0
            else:
                self._audio_parts.pop(0)
                need -= part.size
        return taken[0] if len(taken) == 1 else np.concatenate(taken)

    def _send_audio(self, until_seconds: float | None) -> None:
        if self._audio_stream is None:
            return
        stop = self._audio_received
        if until_seconds is not None:
            stop = min(stop, round(until_seconds * self.audio_rate))
        if stop > self._audio_sent:
            chunk = self._take_audio(stop - self._audio_sent)[None]
            frame = av.AudioFrame.from_ndarray(
                np.ascontiguousarray(chunk), format="flt", layout="mono"
            )
            frame.sample_rate = self.audio_rate
            frame.pts = self._audio_sent
            frame.time_base = Fraction(1, self.audio_rate)
            for packet in self._audio_stream.encode(frame):
                self._container.mux(packet)
            self._audio_sent = stop
        if until_seconds is None:
            for packet in self._audio_stream.encode(None):
                self._container.mux(packet)

    def close(self) -> WriteResult:
        """Flush the encoders, mux the rest of the audio, finish the file and move it in place."""
        if self._closed:
            raise RuntimeError("VideoWriter.close called twice")
        try:
            if self._audio_live and self._audio_received:
                # The end of a sound track given in pieces is known only now.
                self._max_frames = num_frames_for(self._audio_received, self.audio_rate, self.fps)
                extra = self.frames_written - self._max_frames
                if extra > 0:
                    warnings.warn(f"{extra} frame(s) beyond the end of the audio: the video "
                                  "runs on after its sound", stacklevel=2)
            if self._max_frames is not None and self.frames_written < self._max_frames:
                missing = self._max_frames - self.frames_written
                if self._last_frame is None:
                    raise InputError("no frames were written: write at least one before close()")
                warnings.warn(
                    f"{missing} frame(s) short of the audio: holding the last frame to the end",
                    stacklevel=2,
                )
                for _ in range(missing):
                    self._encode_frame(self._last_frame)
            if self.frames_written == 0:
                raise InputError("no frames were written: write at least one before close()")
            self._mux_video(self._video.encode(None))
            video_duration = self.frames_written / self.fps
            audio_duration = None
            if self._audio_received:
                audio_duration = self._audio_received / self.audio_rate
                if self.frames_written <= self._max_frames:  # else live frames ran past it
                    video_duration = audio_duration
            last = self._pending
            if last is not None:
                self._set_last_duration(last, video_duration)
                self._container.mux(last)
                self._pending = None
            self._send_audio(None)
            self._container.close()
            self._closed = True
            if self._tmp is not None:
                os.replace(self._tmp, self.path)
                self._tmp = None
        except BaseException:
            self._discard()
            raise
        self.result = WriteResult(self.path, self.frames_written, video_duration, audio_duration)
        return self.result

    def _set_last_duration(self, packet, end_seconds: float) -> None:
        """Make the track end at ``end_seconds`` by shortening the final packet.

        The MP4 track length is the sum of the sample durations; decode times are one frame
        apart, so the last packet in decode order starts ``frames - 1`` frames after the first
        and its duration is what is left up to the end (presentation order does not matter).
        """
        time_base = self._video.time_base  # the muxer's fine time base, set once it started
        scale = packet.time_base / time_base
        packet.pts = round(packet.pts * scale)
        packet.dts = round(packet.dts * scale)
        rest = Fraction(end_seconds).limit_denominator(1 << 24) - Fraction(
            self.frames_written - 1
        ) / Fraction(self.fps).limit_denominator(1001)
        packet.duration = max(1, round(rest / time_base))
        packet.time_base = time_base

    def _discard(self) -> None:
        """Abandon the output: close what is open and remove the partial file."""
        self._closed = True
        container = getattr(self, "_container", None)
        if container is not None:
            # The file is being thrown away: a trailer that fails to write does not matter.
            with contextlib.suppress(*DECODE_ERRORS):
                container.close()
        tmp = getattr(self, "_tmp", None)
        if tmp is not None:
            tmp.unlink(missing_ok=True)
            self._tmp = None

def _frames_to_uint8(frames: Frames | torch.Tensor | np.ndarray) -> np.ndarray:
    """``[T, H, W, 3]`` uint8 numpy (C-contiguous) from frames in any accepted form."""
    if isinstance(frames, Frames):
        data = frames.to_uint8()
    elif isinstance(frames, (torch.Tensor, np.ndarray)):
        data = torch.as_tensor(frames).detach()
        if data.ndim == 3:
            data = data[None]
        if data.ndim != 4 or data.shape[-1] != 3:
            raise InputError(f"frames must be [T, H, W, 3] RGB, got {tuple(data.shape)}")
        if data.is_floating_point():
            data = (data.float().clamp(0, 1) * 255 + 0.5).to(torch.uint8)
        elif data.dtype != torch.uint8:
            raise InputError(f"frames must be uint8 or float 0..1, got {data.dtype}")
    else:
        raise InputError(f"cannot write frames from a {type(frames).__name__}")
    return np.ascontiguousarray(data.cpu().numpy())


class PNGWriter:
    """Dump frames as numbered PNG files (``frame_000000.png``, ...) into ``directory``.

    Every file carries the provenance tags as PNG text chunks (``title``, ``comment``,
    ``generator`` and ``metadata``'s entries, as :func:`container_tags` makes them).
    """

    def __init__(
        self,
        directory: str | Path,
        *,
        start_index: int = 0,
        pattern: str = "frame_{:06d}.png",
        metadata: dict[str, str] | None = None,
    ) -> None:
        self.directory = Path(directory)
        if self.directory.exists() and not self.directory.is_dir():
            raise InputError(f"cannot write frames into {self.directory}: it is a file")
        self.directory.mkdir(parents=True, exist_ok=True)
        self.pattern = pattern
        self.index = start_index
        self.count = 0
        self._text = PIL.PngImagePlugin.PngInfo()
        for key, value in container_tags(metadata).items():
            self._text.add_text(key, value)

    def __enter__(self) -> PNGWriter:
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        self.close()

    def write(self, frames: Frames | torch.Tensor | np.ndarray) -> None:
        """Save a chunk ``[T, H, W, 3]`` (or one ``[H, W, 3]`` frame) as the next files."""
        for frame in _frames_to_uint8(frames):
            # Level 1: frame dumps are for looking at, not archiving; speed matters more.
            PIL.Image.fromarray(frame).save(
                self.directory / self.pattern.format(self.index), compress_level=1,
                pnginfo=self._text,
            )
            self.index += 1
            self.count += 1

    def close(self) -> int:
        """Number of files written."""
        return self.count


def h264_round_trip(frames: np.ndarray, crf: int, fps: float = 25.0) -> np.ndarray:
    """uint8 ``[T, H, W, 3]`` frames as they come back from H.264 (libx264, yuv420p) at
    ``crf``, in memory: what a re-encode does to them (odd sides lose a row or column)."""
    import io

    h, w = frames.shape[1] // 2 * 2, frames.shape[2] // 2 * 2
    buffer = io.BytesIO()
    with av.open(buffer, "w", format="mp4") as container:
        stream = container.add_stream("libx264", rate=Fraction(fps).limit_denominator(1001))
        stream.height, stream.width = h, w
        stream.pix_fmt = "yuv420p"
        stream.options = {"crf": str(crf)}
        for frame in frames:
            pixels = np.ascontiguousarray(frame[:h, :w])
            picture = av.VideoFrame.from_ndarray(pixels, format="rgb24")
            for packet in stream.encode(picture):
                container.mux(packet)
        for packet in stream.encode(None):
            container.mux(packet)
    buffer.seek(0)
    with av.open(buffer) as container:
        return np.stack([f.to_ndarray(format="rgb24") for f in container.decode(video=0)])
