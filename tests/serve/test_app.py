"""The live server without a browser: options, access, uploads and the WebSocket protocol, on
the test stages (``energy`` features, ``rules`` motion, a flat renderer: fast)."""

from __future__ import annotations

import asyncio
import io
import json
import urllib.error
import urllib.request

import numpy as np
import pytest
from aiohttp import ClientSession, WSMsgType

from talkingface.api import Pipeline
from talkingface.pipeline.errors import ConfigError
from talkingface.serve import BackgroundServer, ServeOptions
from talkingface.serve.session import FRAME_HEADER, StreamLimits

RATE = 16000
EXACT = StreamLimits(max_late_s=60.0)
"""No frame is ever late enough to skip: every frame arrives, however busy the test machine."""


@pytest.fixture
def start_server(pm):
    """Starts a live server on the test stages with the given options (by default no frame is
    skipped as late, so counts are exact on a busy machine); stops it afterwards."""
    servers = []

    def start(**options) -> BackgroundServer:
        options.setdefault("limits", EXACT)
        pipe = Pipeline.from_config(
            "toy", ["audio=energy", "motion=rules", "render.params.size=32"], plugin_manager=pm)
        server = BackgroundServer(pipe, ServeOptions(**options)).start()
        servers.append(server)
        return server

    yield start
    for server in servers:
        server.stop()


def http(url: str, data: bytes | None = None) -> tuple[int, bytes]:
    try:
        with urllib.request.urlopen(urllib.request.Request(url, data=data), timeout=30) as r:
            return r.status, r.read()
    except urllib.error.HTTPError as err:
        return err.code, err.read()


def ws_url(server: BackgroundServer, token: str | None = None) -> str:
    return f"ws://127.0.0.1:{server.port}/ws" + (f"?token={token}" if token else "")


def speech_pcm(seconds: float) -> bytes:
    t = np.arange(int(seconds * RATE)) / RATE
    wave = 0.4 * np.sin(2 * np.pi * 180 * t) * (0.5 + 0.5 * np.sin(2 * np.pi * 3 * t))
    return (wave * 32767).astype("<i2").tobytes()


async def talk(url: str, pcm: bytes, *, chunk_s: float = 0.04, controls=None):
    """One session: start, audio in real time, stop; returns (frame indices, messages)."""
    frames, messages = [], []
    step = int(chunk_s * RATE) * 2
    async with ClientSession() as client, client.ws_connect(url) as ws:
        messages.append(await ws.receive_json())
        start = {"type": "start", "sampleRate": RATE, "portrait": "demo"}
        await ws.send_str(json.dumps(start | ({"controls": controls} if controls else {})))
        messages.append(await ws.receive_json())
        for at in range(0, len(pcm), step):
            await ws.send_bytes(pcm[at:at + step])
            await asyncio.sleep(chunk_s)
        await ws.send_str('{"type": "stop"}')
        async for msg in ws:
            if msg.type == WSMsgType.BINARY:
                frames.append(FRAME_HEADER.unpack_from(msg.data)[0])
            else:
                messages.append(json.loads(msg.data))
                if messages[-1]["type"] == "ended":
                    break
    return frames, messages


async def misbehave(url: str, *sends) -> tuple[int | None, list[dict]]:
    """Sends ``sends`` (str or bytes) after the hello; returns the close code and messages."""
    messages = []
    async with ClientSession() as client, client.ws_connect(url) as ws:
        await ws.receive_json()
        for item in sends:
            if isinstance(item, bytes):
                await ws.send_bytes(item)
            else:
                await ws.send_str(item)
        async for msg in ws:
            if msg.type == WSMsgType.TEXT:
                messages.append(json.loads(msg.data))
        return ws.close_code, messages


def test_binding_beyond_this_machine_needs_a_token():
    with pytest.raises(ConfigError, match="--token"):
        ServeOptions(host="0.0.0.0")
    assert ServeOptions(host="0.0.0.0", token="s3cret").token == "s3cret"


def test_a_session_streams_frames_in_order_and_ends(start_server):
    server = start_server()
    frames, messages = asyncio.run(talk(ws_url(server), speech_pcm(1.0)))
    assert messages[0]["type"] == "hello" and messages[0]["fps"] == 25
    assert messages[1] == {"type": "started"}
    assert frames == list(range(25))  # 1 s at 25 fps, none dropped
    assert messages[-1]["type"] == "ended" and messages[-1]["framesSent"] == 25
    assert "error" not in messages[-1]


def test_frames_go_out_uncompressed_even_when_the_client_offers_deflate(start_server):
    server = start_server()

    async def negotiated() -> int:
        async with ClientSession() as client, client.ws_connect(ws_url(server),
                                                                compress=15) as ws:
            await ws.receive_json()
            return ws.compress

    assert asyncio.run(negotiated()) == 0


def test_live_controls_are_taken_and_bad_ones_close_the_session(start_server):
    server = start_server()
    assert server.server.live_controls
    frames, _ = asyncio.run(talk(ws_url(server), speech_pcm(0.4),
                                 controls={"emotion": "happy", "gaze": [0.2, 0.1]}))
    assert len(frames) == 10
    code, messages = asyncio.run(misbehave(
        ws_url(server), '{"type": "controls", "emotion": "furious"}'))
    assert code == 1008 and "emotion must be one of" in messages[-1]["reason"]
    code, messages = asyncio.run(misbehave(ws_url(server), '{"type": "controls", "mood": 1}'))
    assert code == 1008 and "unknown control 'mood'" in messages[-1]["reason"]


@pytest.mark.parametrize("sends, reason", [
    (["not json"], "not JSON"),
    (['["start"]'], 'JSON object with a "type"'),
    (['{"type": "dance"}'], "unknown message type 'dance'"),
    ([b"\x00\x01"], "audio before start"),
    (['{"type": "start", "sampleRate": "fast"}'], "sampleRate must be an integer"),
    (['{"type": "start", "sampleRate": 16000}', b"\x00\x01\x02"], "whole int16 samples"),
    (['{"type": "start", "sampleRate": 16000}', b"\x00\x00" * 48000], "faster than real time"),
])
def test_malformed_messages_close_that_session_with_a_reason(start_server, sends, reason):
    server = start_server()
    code, messages = asyncio.run(misbehave(ws_url(server), *sends))
    assert code == 1008
    assert messages[-1]["type"] == "error" and reason in messages[-1]["reason"]
    assert http(server.url + "api/info")[0] == 200  # the server goes on


def test_a_flood_of_messages_closes_only_that_session(start_server):
    server = start_server()

    async def both():
        good = asyncio.create_task(talk(ws_url(server), speech_pcm(1.0)))
        flood = misbehave(ws_url(server), '{"type": "start", "sampleRate": 16000}',
                          *[b"\x00\x00"] * 400)
        return await flood, await good

    (code, messages), (frames, _) = asyncio.run(both())
    assert code == 1008 and "a flood" in messages[-1]["reason"]
    assert frames == list(range(25))


def test_sessions_are_limited_in_number_and_rate(start_server):
    server = start_server(max_sessions=1, sessions_per_minute=3)

    async def two_at_once():
        async with ClientSession() as client, client.ws_connect(ws_url(server)) as ws:
            await ws.receive_json()
            async with client.get(server.url + "api/info") as r:
                assert (await r.json())["sessions"] == 1
            async with client.get(ws_url(server).replace("ws:", "http:")) as refused:
                return refused.status, await refused.json()

    status, body = asyncio.run(two_at_once())
    assert status == 503 and "busy" in body["error"]
    for _ in range(2):
        asyncio.run(misbehave(ws_url(server), '{"type": "stop"}', "bye"))
    status, body = http(server.url.replace("http:", "http:") + "ws")
    assert status == 429 and "wait a minute" in json.loads(body)["error"]


def test_a_token_guards_the_page_the_api_and_the_sessions(start_server):
    server = start_server(token="s3cret")
    page = server.url.split("?")[0]
    status, body = http(page)
    assert status == 401 and b"needs its token" in body and b'name="token"' in body
    assert http(page + "?token=wrong")[0] == 401
    status, body = http(page + "?token=s3cret")
    assert status == 200 and b"AI-generated" in body
    assert http(page + "api/info")[0] == 401
    assert http(page + "api/info?token=s3cret")[0] == 200
    assert http(page + "ws")[0] == 401
    frames, _ = asyncio.run(talk(ws_url(server, "s3cret"), speech_pcm(0.2)))
    assert frames == list(range(5))


def _png(width: int, height: int) -> bytes:
    from PIL import Image

    buffer = io.BytesIO()
    Image.new("RGB", (width, height), (200, 150, 120)).save(buffer, format="PNG")
    return buffer.getvalue()


def test_uploads_are_checked_by_decoding(start_server):
    server = start_server()
    status, body = http(server.url + "api/portrait", b"GIF89a not really")
    assert status == 415 and "jpg, png or webp" in json.loads(body)["error"]
    status, body = http(server.url + "api/portrait", _png(8001, 2))
    assert status == 413 and "8000" in json.loads(body)["error"]
    status, body = http(server.url + "api/portrait", _png(64, 64))
    assert status == 200
    portrait = json.loads(body)["portrait"]
    assert server.server.portraits.get(portrait) is not None
    status, body = http(server.url + "api/audio", b"RIFF....WAVEjunk")
    error = json.loads(body)["error"]
    assert status == 415 and "could not be used" in error and "talkingface-upload" not in error
    status, body = http(server.url + "api/audio", speech_pcm(0.01))  # no header: not a file
    assert status == 415
    status, body = http(server.url + "api/demo-audio")
    assert status == 200 and len(body) % 2 == 0 and len(body) > RATE


def test_uploads_over_the_size_limit_are_refused(start_server, monkeypatch):
    from talkingface.serve import app

    monkeypatch.setattr(app, "MAX_IMAGE_BYTES", 1000)
    server = start_server()
    status, body = http(server.url + "api/portrait", _png(64, 64) + b"\x00" * 2000)
    assert status == 413 and "limit is" in json.loads(body)["error"]


def test_a_stream_behind_renders_only_the_newest_frames_and_counts_the_rest(start_server):
    server = start_server(limits=StreamLimits(max_late_s=-10.0))  # every frame is "late"
    frames, messages = asyncio.run(talk(ws_url(server), speech_pcm(1.0), chunk_s=0.2))
    ended = messages[-1]
    assert ended["type"] == "ended" and frames and frames[-1] == 24
    assert frames == sorted(frames) and len(frames) < 25
    assert ended["framesSent"] == len(frames) and ended["framesDropped"] == 25 - len(frames)


def test_a_slow_client_drops_the_oldest_frames():
    from talkingface.serve.session import FrameOutbox

    outbox = FrameOutbox(StreamLimits().outbox_frames)
    for index in range(5):
        outbox.put(index, b"jpeg")
    outbox.finish({"type": "ended"})
    taken = [outbox.take() for _ in range(5)]
    assert [FRAME_HEADER.unpack_from(t) for t in taken[:3]] == [(2, 2), (3, 2), (4, 2)]
    assert taken[3] == {"type": "ended"} and taken[4] is None


def test_an_oversized_message_closes_that_session(start_server):
    server = start_server()
    code, _ = asyncio.run(misbehave(ws_url(server), '{"type": "start", "sampleRate": 16000}',
                                    b"\x00" * (300 * 1024)))
    assert code == 1009  # message too big
    assert http(server.url + "api/info")[0] == 200


def test_a_stalled_client_never_holds_more_than_the_outbox(start_server):
    """A client that stops reading: its frames wait at most ``outbox_frames`` deep while the
    worker keeps going (the rest are dropped and counted), and the session's stream ends."""
    from talkingface.serve.app import _Session

    server = start_server().server

    class StalledSocket:
        async def send_json(self, data):
            pass

        async def send_bytes(self, data):
            await asyncio.Event().wait()  # never returns: the client reads nothing

    async def run():
        session = _Session(server, StalledSocket())
        sender = asyncio.create_task(session._send())
        for index in range(40):
            session._deliver(index, b"jpeg")
            await asyncio.sleep(0)
        waiting = len(session.outbox.frames)
        sender.cancel()
        return waiting, session.outbox.dropped

    waiting, dropped = asyncio.run(run())
    assert waiting == StreamLimits().outbox_frames
    assert dropped == 40 - 1 - waiting  # one is stuck in send_bytes


def test_the_server_runs_torch_on_the_pipelines_threads_and_restores_them(pm):
    import torch

    before = torch.get_num_threads()
    want = 1 if before != 1 else 2
    pipe = Pipeline.from_config("toy", [f"threads={want}"], plugin_manager=pm)
    try:
        with BackgroundServer(pipe, warm_up=False):
            assert torch.get_num_threads() == want
        assert torch.get_num_threads() == before
    finally:
        torch.set_num_threads(before)
