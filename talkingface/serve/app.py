"""The live page's web server (aiohttp): the page and its static files, portrait and audio
uploads, and one WebSocket per session carrying microphone or clip audio in and JPEG frames out.

Protocol on the WebSocket (``/ws``). Client → server: JSON text messages ``{"type": "start",
"sampleRate": 48000, "portrait": "demo", "controls": {...}}``, ``{"type": "controls", ...}``,
``{"type": "stop"}``, and binary messages of little-endian int16 mono samples at the declared
rate. Server → client: JSON ``hello``, ``started``, ``ended`` and ``error`` messages, and
binary frames (:data:`~talkingface.serve.session.FRAME_HEADER` + JPEG). A message the protocol
does not allow closes that session with the reason (code 1008); other sessions go on.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import hashlib
import hmac
import json
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from aiohttp import WSCloseCode, WSMsgType, web

from talkingface.api import LiveControls, Pipeline
from talkingface.pipeline.contracts import EMOTIONS, Audio, PreparedPortrait
from talkingface.pipeline.errors import ConfigError, ContractError, TalkingFaceError
from talkingface.serve.session import FrameOutbox, LiveStream, ProtocolError, StreamLimits
from talkingface.serve.uploads import (
    MAX_AUDIO_BYTES,
    MAX_IMAGE_BYTES,
    UploadError,
    decode_audio,
    decode_portrait,
    pcm16,
)

STATIC = Path(__file__).resolve().parent / "static"
LOOPBACK = ("127.0.0.1", "localhost", "::1")
MAX_MESSAGE_BYTES = 256 * 1024
"""Largest WebSocket message (a second of 48 kHz int16 audio is 96 kB)."""
MAX_MESSAGES_PER_S = 250
"""More client messages than this in one second close the session as a flood (the page sends
about 50 a second)."""
CONTROL_FIELDS = {"emotion": "emotion", "emotionStrength": "emotion_strength",
                  "headMotion": "head_motion", "gaze": "gaze"}
"""The live controls the page may change, by their name in the protocol."""


@dataclass(frozen=True)
class ServeOptions:
    """How the live server runs.

    Attributes:
        host: address to bind; anything but loopback needs ``token``.
        port: TCP port; 0 picks a free one (printed on start).
        token: when set, the page, the API and the WebSocket need it (``?token=``).
        max_sessions: live sessions at once; more are refused until one closes.
        sessions_per_minute: new sessions one client address may open per minute.
        uploads_per_minute: uploads one client address may make per minute.
        limits: bounds of each stream (flood threshold, frames waiting, JPEG quality).
    """

    host: str = "127.0.0.1"
    port: int = 0
    token: str | None = None
    max_sessions: int = 4
    sessions_per_minute: int = 30
    uploads_per_minute: int = 20
    limits: StreamLimits = field(default_factory=StreamLimits)

    def __post_init__(self) -> None:
        if self.host not in LOOPBACK and not self.token:
            raise ConfigError(
                f"serving on {self.host} lets other machines drive this computer's CPU and see "
                "uploads: give a secret with --token (the page then asks for it), or keep the "
                "default --host 127.0.0.1"
            )
        if not 0 <= self.port <= 65535:
            raise ConfigError(f"port must be 0..65535, got {self.port}")
        if self.max_sessions < 1:
            raise ConfigError(f"max_sessions must be at least 1, got {self.max_sessions}")


class RateLimiter:
    """At most ``per_minute`` events per key in any 60 s window."""

    def __init__(self, per_minute: int) -> None:
        self.per_minute = per_minute
        self.events: dict[str, collections.deque[float]] = {}

    def allow(self, key: str) -> bool:
        now = time.monotonic()
        events = self.events.setdefault(key, collections.deque())
        while events and now - events[0] > 60.0:
            events.popleft()
        if len(events) >= self.per_minute:
            return False
        events.append(now)
        # Forget quiet clients so the table does not grow with every address ever seen.
        for other in [k for k, v in self.events.items() if not v and k != key]:
            del self.events[other]
        return True


class PortraitStore:
    """Prepared portraits by id (the demo's is ``"demo"``): each upload is analysed once; the
    least recently used go first beyond ``size``. Preparation runs one at a time (the face
    analyser is shared)."""

    def __init__(self, pipe: Pipeline, size: int = 8) -> None:
        self.pipe, self.size = pipe, size
        self.prepared: collections.OrderedDict[str, PreparedPortrait] = collections.OrderedDict()
        self.lock = threading.Lock()  # the table
        self.preparing = threading.Lock()  # one face analysis at a time

    def get(self, portrait_id: str) -> PreparedPortrait | None:
        with self.lock:
            prepared = self.prepared.get(portrait_id)
            if prepared is not None:
                self.prepared.move_to_end(portrait_id)
            return prepared

    def add(self, portrait_id: str, image) -> PreparedPortrait:
        """Prepare ``image`` (in the caller's thread) unless it is known already."""
        with self.preparing:
            known = self.get(portrait_id)
            if known is not None:
                return known
            prepared = self.pipe.prepare(image)
        with self.lock:
            self.prepared[portrait_id] = prepared
            while len(self.prepared) > self.size:
                oldest = next(k for k in self.prepared if k != "demo")
                del self.prepared[oldest]
        return prepared


class LiveServer:
    """The application: build it with a pipeline, then :meth:`app` for aiohttp."""

    def __init__(self, pipe: Pipeline, options: ServeOptions | None = None) -> None:
        self.pipe = pipe
        self.options = options or ServeOptions()
        self.portraits = PortraitStore(pipe)
        self.sessions: set[_Session] = set()
        self.session_limiter = RateLimiter(self.options.sessions_per_minute)
        self.upload_limiter = RateLimiter(self.options.uploads_per_minute)
        self.live_controls = pipe.graph.takes_live_controls()
        self.rate = pipe.graph.audio.sample_rate
        self._demo_audio: bytes | None = None

    def warm_up(self) -> None:
        """Analyse the demo portrait and run a short silent stream, so the first session
        starts at full speed (torch and the renderer build their buffers on first use)."""
        from talkingface.assets import demo_audio_path, demo_portrait

        prepared = self.portraits.add("demo", demo_portrait())
        silence = Audio(torch.zeros(self.rate // 2), self.rate)
        for _ in self.pipe.stream_chunks(prepared, silence.chunks(self.rate // 50),
                                         profile=False):
            pass
        self._demo_audio = pcm16(self.pipe.load_audio(demo_audio_path()))

    def app(self) -> web.Application:
        app = web.Application(middlewares=[self._token_middleware],
                              client_max_size=MAX_AUDIO_BYTES + 1024 * 1024)
        app.router.add_get("/", self._index)
        app.router.add_static("/static/", STATIC, follow_symlinks=False)
        app.router.add_get("/api/info", self._info)
        app.router.add_get("/api/demo-audio", self._demo_audio_pcm)
        app.router.add_get("/api/demo-portrait", self._demo_portrait)
        app.router.add_post("/api/portrait", self._upload_portrait)
        app.router.add_post("/api/audio", self._upload_audio)
        app.router.add_get("/ws", self._websocket)
        app.router.add_get("/favicon.ico", _no_content)
        app.on_shutdown.append(self._close_sessions)
        return app

    # -- access -----------------------------------------------------------------------------

    def _token_ok(self, request: web.Request) -> bool:
        if not self.options.token:
            return True
        given = request.query.get("token") or request.headers.get("X-Talkingface-Token", "")
        return hmac.compare_digest(given.encode(), self.options.token.encode())

    @web.middleware
    async def _token_middleware(self, request: web.Request, handler):
        if request.path == "/" or request.path.startswith("/static/") or self._token_ok(request):
            return await handler(request)
        return _error(401, "this server needs its token: open the page with ?token=...")

    async def _index(self, request: web.Request) -> web.StreamResponse:
        if not self._token_ok(request):
            wrong = "token" in request.query
            return web.Response(status=401, content_type="text/html",
                                text=_TOKEN_PAGE.format(
                                    message="That token is not right." if wrong else ""))
        return web.FileResponse(STATIC / "index.html", headers={"Cache-Control": "no-store"})

    async def _info(self, request: web.Request) -> web.Response:
        return web.json_response(self._hello())

    def _hello(self) -> dict[str, Any]:
        return {"type": "hello", "fps": self.pipe.config.fps, "pipeline": self.pipe.description,
                "emotions": list(EMOTIONS), "liveControls": self.live_controls,
                "sampleRate": self.rate, "maxSessions": self.options.max_sessions,
                "sessions": len(self.sessions)}

    # -- uploads ----------------------------------------------------------------------------

    async def _read_upload(self, request: web.Request, limit: int, what: str) -> bytes:
        if not self.upload_limiter.allow(request.remote or ""):
            raise UploadError("too many uploads from this address: wait a minute", status=429)
        if request.content_length is not None and request.content_length > limit:
            raise UploadError(f"the {what} is {request.content_length / 2**20:.1f} MB; the "
                              f"limit is {limit // 2**20} MB", status=413)
        data = bytearray()
        async for block in request.content.iter_chunked(1 << 16):
            data += block
            if len(data) > limit:
                raise UploadError(f"the {what} is over the {limit // 2**20} MB limit",
                                  status=413)
        return bytes(data)

    async def _upload_portrait(self, request: web.Request) -> web.Response:
        loop = asyncio.get_running_loop()
        try:
            data = await self._read_upload(request, MAX_IMAGE_BYTES, "image")
            portrait_id = hashlib.sha256(data).hexdigest()[:16]
            if self.portraits.get(portrait_id) is None:
                portrait = await loop.run_in_executor(None, decode_portrait, data)
                await loop.run_in_executor(None, self.portraits.add, portrait_id, portrait)
        except UploadError as exc:
            return _error(exc.status, exc.message)
        except TalkingFaceError as exc:  # no face found, and other input problems
            return _error(422, f"this portrait cannot be animated: {exc}")
        return web.json_response({"portrait": portrait_id})

    async def _upload_audio(self, request: web.Request) -> web.Response:
        loop = asyncio.get_running_loop()
        try:
            data = await self._read_upload(request, MAX_AUDIO_BYTES, "audio file")
            clip = await loop.run_in_executor(None, decode_audio, data, self.rate)
        except UploadError as exc:
            return _error(exc.status, exc.message)
        return _pcm_response(pcm16(clip), self.rate)

    async def _demo_portrait(self, request: web.Request) -> web.StreamResponse:
        from talkingface.assets import demo_portrait_path

        return web.FileResponse(demo_portrait_path())

    async def _demo_audio_pcm(self, request: web.Request) -> web.Response:
        if self._demo_audio is None:
            from talkingface.assets import demo_audio_path

            clip = await asyncio.get_running_loop().run_in_executor(
                None, self.pipe.load_audio, demo_audio_path())
            self._demo_audio = pcm16(clip)
        return _pcm_response(self._demo_audio, self.rate)

    # -- sessions ---------------------------------------------------------------------------

    async def _websocket(self, request: web.Request) -> web.StreamResponse:
        if len(self.sessions) >= self.options.max_sessions:
            return _error(503, f"the server is busy ({len(self.sessions)} live sessions, its "
                               "limit): try again when one closes")
        if not self.session_limiter.allow(request.remote or ""):
            return _error(429, "too many new sessions from this address: wait a minute")
        # No permessage-deflate: JPEG frames shrink by under a fifth, and deflating 16 kB a
        # frame costs the server 0.4 ms plus a hop to a pool thread (aiohttp compresses
        # messages over 16 kB off the event loop), and the browser the inflating.
        ws = web.WebSocketResponse(max_msg_size=MAX_MESSAGE_BYTES, heartbeat=30.0,
                                   compress=False)
        await ws.prepare(request)
        session = _Session(self, ws)
        self.sessions.add(session)
        try:
            await session.serve()
        finally:
            self.sessions.discard(session)
        return ws

    async def _close_sessions(self, app: web.Application) -> None:
        for session in list(self.sessions):
            await session.ws.close(code=WSCloseCode.GOING_AWAY, message=b"server shutting down")


class _Session:
    """One WebSocket: at most one stream at a time, started and stopped by the client."""

    def __init__(self, server: LiveServer, ws: web.WebSocketResponse) -> None:
        self.server, self.ws = server, ws
        self.loop = asyncio.get_running_loop()
        self.outbox = FrameOutbox(server.options.limits.outbox_frames)
        self.wake = asyncio.Event()
        self.stream: LiveStream | None = None
        self.controls = LiveControls(server.pipe.graph.controls)
        self.window_start, self.window_count = time.monotonic(), 0

    async def serve(self) -> None:
        await self.ws.send_json(self.server._hello())
        sender = asyncio.create_task(self._send())
        try:
            async for msg in self.ws:
                self._count_message()
                if msg.type == WSMsgType.TEXT:
                    reply = self._on_text(msg.data)
                    if reply is not None:
                        await self.ws.send_json(reply)
                elif msg.type == WSMsgType.BINARY:
                    self._on_audio(msg.data)
                else:
                    break
        except ProtocolError as exc:
            await self._close(str(exc))
        finally:
            if self.stream is not None:
                self.stream.cancel()
            sender.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await sender

    async def _close(self, reason: str) -> None:
        with contextlib.suppress(ConnectionError, RuntimeError):
            await self.ws.send_json({"type": "error", "reason": reason, "fatal": True})
        # A close reason has at most 123 bytes; the full one went in the message above.
        await self.ws.close(code=WSCloseCode.POLICY_VIOLATION,
                            message=reason.encode()[:120])

    def _count_message(self) -> None:
        now = time.monotonic()
        if now - self.window_start >= 1.0:
            self.window_start, self.window_count = now, 0
        self.window_count += 1
        if self.window_count > MAX_MESSAGES_PER_S:
            raise ProtocolError(f"more than {MAX_MESSAGES_PER_S} messages a second: a flood")

    def _on_text(self, text: str) -> dict | None:
        try:
            message = json.loads(text)
        except ValueError:
            raise ProtocolError("a text message that is not JSON") from None
        if not isinstance(message, dict) or not isinstance(message.get("type"), str):
            raise ProtocolError('a message must be a JSON object with a "type"')
        kind = message["type"]
        if kind == "start":
            return self._start(message)
        if kind == "controls":
            return self._set_controls(message)
        if kind == "stop":
            if self.stream is not None:
                self.stream.stop()
            return None
        raise ProtocolError(f"unknown message type {kind[:40]!r}")

    def _start(self, message: dict) -> dict:
        if self.stream is not None:
            raise ProtocolError("start while a stream runs: send stop and wait for ended")
        rate = message.get("sampleRate")
        if not isinstance(rate, int) or isinstance(rate, bool) or not 8000 <= rate <= 192000:
            raise ProtocolError(f"sampleRate must be an integer in 8000..192000, got {rate!r}")
        portrait_id = message.get("portrait", "demo")
        prepared = self.server.portraits.get(portrait_id) if isinstance(portrait_id, str) else None
        if prepared is None:
            return {"type": "error", "fatal": False,
                    "reason": "that portrait is no longer on the server: upload it again"}
        if "controls" in message:
            self._set_controls(message["controls"])
        self.outbox = FrameOutbox(self.server.options.limits.outbox_frames)
        self.stream = LiveStream(self.server.pipe, prepared, rate, self.controls,
                                 self._from_worker(self._deliver),
                                 self._from_worker(lambda n: self.outbox.skip(n)),
                                 self._from_worker(self._ended),
                                 self.server.options.limits)
        return {"type": "started"}

    def _set_controls(self, message: Any) -> dict | None:
        if not isinstance(message, dict):
            raise ProtocolError("controls must be a JSON object")
        changes = {}
        for key, value in message.items():
            if key == "type":
                continue
            if key not in CONTROL_FIELDS:
                raise ProtocolError(f"unknown control {key[:40]!r}; the page may change "
                                    f"{', '.join(CONTROL_FIELDS)}")
            if key == "gaze" and value is not None:
                if (not isinstance(value, list) or len(value) != 2
                        or not all(_is_number(v) for v in value)):
                    raise ProtocolError("gaze must be null or [x, y] with numbers in -1..1")
                value = (float(value[0]), float(value[1]))
            elif key in ("emotionStrength", "headMotion") and not _is_number(value):
                raise ProtocolError(f"{key} must be a number, got {value!r}"[:200])
            elif key == "emotion" and not isinstance(value, str):
                raise ProtocolError("emotion must be a string")
            changes[CONTROL_FIELDS[key]] = value
        if changes and self.stream is not None and not self.server.live_controls:
            return {"type": "error", "fatal": False,
                    "reason": f"the motion generator {self.server.pipe.graph.motion.name!r} "
                              "cannot change controls mid-stream: stop and start again"}
        try:
            self.controls.update(**changes)
        except ContractError as exc:
            raise ProtocolError(str(exc)) from None
        return None

    def _on_audio(self, data: bytes) -> None:
        if self.stream is None:
            raise ProtocolError("audio before start: send a start message first")
        if len(data) % 2:
            raise ProtocolError("audio messages must hold whole int16 samples")
        samples = np.frombuffer(data, "<i2").astype(np.float32) / 32768.0
        self.stream.feed(samples)

    def _from_worker(self, callback):
        """``callback`` called on the event loop, from the stream's worker thread."""
        def call(*args) -> None:
            with contextlib.suppress(RuntimeError):  # the loop closed: the server is gone
                self.loop.call_soon_threadsafe(callback, *args)
        return call

    def _deliver(self, index: int, jpeg: bytes) -> None:
        self.outbox.put(index, jpeg)
        self.wake.set()

    def _ended(self, error: BaseException | None) -> None:
        stream, self.stream = self.stream, None
        if stream is None or stream.cancelled.is_set():
            return
        message = {"type": "ended", "framesDropped": self.outbox.dropped}
        if error is not None:
            message["error"] = str(error) if isinstance(error, TalkingFaceError) else (
                f"internal error: {type(error).__name__}: {error}")
        self.outbox.finish(message)
        self.wake.set()

    async def _send(self) -> None:
        while True:
            await self.wake.wait()
            self.wake.clear()
            while (item := self.outbox.take()) is not None:
                try:
                    if isinstance(item, bytes):
                        await self.ws.send_bytes(item)
                        self.outbox.sent += 1
                    else:
                        item["framesSent"] = self.outbox.sent  # all sent by now
                        await self.ws.send_json(item)
                except (ConnectionError, RuntimeError):
                    return  # the client went away; serve() ends the stream


async def _no_content(request: web.Request) -> web.Response:
    return web.Response(status=204)


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _error(status: int, message: str) -> web.Response:
    return web.json_response({"error": message}, status=status)


def _pcm_response(data: bytes, rate: int) -> web.Response:
    return web.Response(body=data, content_type="application/octet-stream",
                        headers={"X-Sample-Rate": str(rate), "X-Sample-Format": "s16le"})


_TOKEN_PAGE = """<!doctype html><html lang="en"><head><meta charset="utf-8">
<title>talkingface: token needed</title></head><body style="font-family:sans-serif;margin:3em">
<h1>This talkingface server needs its token</h1><p>{message}</p>
<form method="get" action="/"><label>Token <input name="token" type="password" autofocus>
</label> <button>Open</button></form></body></html>"""
