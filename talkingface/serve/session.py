"""One live stream of a page: its audio in, JPEG frames out, through the pipeline's streaming
graph in a worker thread.

Both directions are bounded. Audio waits in the inbox only while the worker computes; a worker
that fell behind takes everything waiting as one bigger chunk and catches up, and a client
that sends audio faster than real time is refused (a flood). Frames wait in a small outbox on
the event loop; when the client reads slower than frames come (a slow or stalled connection),
the oldest waiting frame is dropped and counted, so neither the worker nor other sessions wait
for a client.
"""

from __future__ import annotations

import io
import math
import queue
import struct
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import numpy as np
import torch

from talkingface.api import LiveControls, Pipeline
from talkingface.pipeline.contracts import Audio, PreparedPortrait

FRAME_HEADER = struct.Struct("<II")
"""Binary frame message header: frame index, frames dropped so far (then the JPEG bytes)."""


class ProtocolError(Exception):
    """The client broke the protocol (malformed message, wrong type, flood): the session is
    closed with this reason; the server and other sessions go on."""


@dataclass(frozen=True)
class StreamLimits:
    """Bounds of one live stream.

    Attributes:
        max_ahead_s: audio the client may send ahead of real time before the stream is
            closed as a flood (network bursts stay well under it).
        max_late_s: how late (after the audio it needs has arrived) a frame may still be
            rendered; a stream further behind renders only the newest frame of each piece,
            so its delay stays bounded on a busy CPU.
        outbox_frames: encoded frames that may wait for a slow client; more drop the oldest.
        jpeg_quality: JPEG quality of the frames (1-95).
    """

    max_ahead_s: float = 1.5
    max_late_s: float = 0.1
    outbox_frames: int = 3
    jpeg_quality: int = 80


class FrameOutbox:
    """Encoded frames waiting for the client, at most ``size`` (the oldest drop first), then
    the stream's closing message. Used on the event loop only."""

    def __init__(self, size: int) -> None:
        self.frames: deque[tuple[int, bytes]] = deque()
        self.size = size
        self.dropped = 0
        self.sent = 0
        self.final: dict | None = None

    def skip(self, count: int) -> None:
        """``count`` frames were not rendered (the stream was behind): they count as dropped."""
        self.dropped += count

    def put(self, index: int, jpeg: bytes) -> None:
        if len(self.frames) >= self.size:
            self.frames.popleft()
            self.dropped += 1
        self.frames.append((index, jpeg))

    def finish(self, message: dict) -> None:
        """``message`` goes out after the frames still waiting."""
        self.final = message

    def take(self) -> bytes | dict | None:
        """The next message: a frame (header + JPEG, with the drops so far), else the closing
        message once, else None."""
        if self.frames:
            index, jpeg = self.frames.popleft()
            return FRAME_HEADER.pack(index, self.dropped) + jpeg
        final, self.final = self.final, None
        return final


def encode_jpeg(frame: torch.Tensor, quality: int) -> bytes:
    """JPEG bytes of one uint8 ``[H, W, 3]`` frame."""
    from PIL import Image

    buffer = io.BytesIO()
    Image.fromarray(frame.numpy()).save(buffer, format="JPEG", quality=quality)
    return buffer.getvalue()


class LiveStream:
    """Audio pushed by the client → the pipeline's stream (a worker thread) → JPEG frames.

    ``on_frame(index, jpeg)``, ``on_skip(count)`` (frames not rendered: the stream was
    behind) and ``on_end(error or None)`` are called from the worker thread; the caller hands
    them over to its event loop.
    """

    def __init__(
        self,
        pipe: Pipeline,
        prepared: PreparedPortrait,
        sample_rate: int,
        controls: LiveControls,
        on_frame: Callable[[int, bytes], None],
        on_skip: Callable[[int], None],
        on_end: Callable[[BaseException | None], None],
        limits: StreamLimits,
    ) -> None:
        self.pipe, self.prepared, self.rate = pipe, prepared, sample_rate
        self.controls, self.limits = controls, limits
        self.on_frame, self.on_skip, self.on_end = on_frame, on_skip, on_end
        graph = pipe.graph
        self.fps = graph.fps
        # When frame 0 can exist at the earliest: the audio it needs (lookahead included).
        self.first_frame_s = graph.first_frame_points(graph.audio.sample_rate)[-1] / (
            graph.audio.sample_rate)
        self.inbox: queue.SimpleQueue[np.ndarray | None] = queue.SimpleQueue()
        self.received = 0
        self.first_at: float | None = None
        self.ended = False
        self.cancelled = threading.Event()
        self.thread = threading.Thread(target=self._run, name="talkingface-live", daemon=True)
        self.thread.start()

    def feed(self, samples: np.ndarray) -> None:
        """Queue float32 samples ``[S]``; a client ahead of real time is a flood."""
        if self.ended:
            raise ProtocolError("audio after stop: send start first")
        now = time.monotonic()
        if self.first_at is None:
            self.first_at = now
        self.received += len(samples)
        ahead = self.received / self.rate - (now - self.first_at)
        if ahead > self.limits.max_ahead_s:
            raise ProtocolError(f"audio arrives faster than real time ({ahead:.1f} s ahead): "
                                "send it as it is recorded or played")
        self.inbox.put(samples)

    def stop(self) -> None:
        """No more audio: the stream flushes its last frames and ends."""
        if not self.ended:
            self.ended = True
            self.inbox.put(None)

    def cancel(self) -> None:
        """The client went away: end without the last frames, as soon as possible."""
        self.cancelled.set()
        self.stop()

    def _chunks(self) -> Iterator[Audio]:
        offset = 0
        while not self.cancelled.is_set():
            parts = [self.inbox.get()]
            # Whatever else is waiting goes in the same chunk: a worker that fell behind
            # catches up at once instead of staying behind by its backlog.
            while True:
                try:
                    parts.append(self.inbox.get_nowait())
                except queue.Empty:
                    break
            done = parts[-1] is None  # stop() queues None last: nothing comes after it
            samples = [part for part in parts if part is not None]
            if samples and not self.cancelled.is_set():
                chunk = np.concatenate(samples) if len(samples) > 1 else samples[0]
                yield Audio(torch.from_numpy(chunk), self.rate, offset)
                offset += len(chunk)
            if done:
                return

    def _late_frames(self, start: int, stop: int) -> int:
        """How many of frames ``start .. stop - 1`` are later than ``max_late_s`` after their
        audio arrived (all but the newest at most): those are not rendered."""
        behind = time.monotonic() - self.first_at - self.first_frame_s - self.limits.max_late_s
        late = min(math.floor(behind * self.fps) + 1 - start, stop - start - 1)
        if late > 0:
            self.on_skip(late)
            return late
        return 0

    def _run(self) -> None:
        error: BaseException | None = None
        frames_iter = self.pipe.stream_chunks(self.prepared, self._chunks(),
                                              controls=self.controls, profile=False,
                                              skip_frames=self._late_frames)
        try:
            for frames in frames_iter:
                if self.cancelled.is_set():
                    break
                data = frames.data
                if data.dtype != torch.uint8:
                    data = (data.clamp(0, 1) * 255).round().to(torch.uint8)
                for i in range(frames.num_frames):
                    self.on_frame(frames.start_frame + i,
                                  encode_jpeg(data[i], self.limits.jpeg_quality))
        except Exception as exc:  # noqa: BLE001 - reported to the client, the server goes on
            # A stream stopped before any audio has nothing to report.
            error = exc if self.received else None
        finally:
            frames_iter.close()
        self.on_end(error)
