"""The live page (``talkingface serve``): transport cost, the page's own figures in Chromium,
and memory over many open/close cycles.

1. Transport: per 512² frame of the demo talking, JPEG (what the server sends) against H.264
   (libx264 ultrafast/zerolatency, what WebRTC or WebCodecs would carry): encode ms and bytes.
2. Page figures (needs Debian's ``chromium`` and Playwright): the page opened with
   ``?autostart=mic`` (a fake microphone playing the demo speech), ``?autostart=demo`` (the
   clip played in the page), and two ``mic`` pages at once; ``window.talkingface.stats`` read
   after ``--seconds``.
3. Memory: ``--cycles`` sessions opened, fed 0.3 s of speech in real time, and closed (half
   of them mid-stream), against one server; the process's RSS after the first 10 cycles and
   after the last, and the live-stream threads left.
4. Server alone (``--headless-sessions N``): N aiohttp WebSocket clients in this process feed
   the demo speech in real time (no browser); frames received per second by each, and the
   CPU the process used. Against the two Chromium pages this tells the server's own limit
   from the browser's share of the 2 cores (the page run reports Chromium's CPU too).

    python benchmarks/bench_serve.py                  # all but the headless part, 50 cycles
    python benchmarks/bench_serve.py --cycles 50 --no-browser --json serve.json
    python benchmarks/bench_serve.py --headless-sessions 2 --cycles 0

The server runs in this process (``BackgroundServer``, realtime preset, ``threads=1`` as
``talkingface serve`` sets it).
"""

from __future__ import annotations

import argparse
import asyncio
import fractions
import io
import json
import os
import platform
import shutil
import statistics
import tempfile
import threading
import time
from pathlib import Path


def rss_mb() -> float:
    with open(f"/proc/{os.getpid()}/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return float("nan")


def transport(pipe) -> dict:
    """Encode cost and size per frame: JPEG quality 80 vs H.264 ultrafast/zerolatency."""
    import av
    from PIL import Image

    from talkingface.assets import demo_audio_path, demo_portrait

    clip = pipe.load_audio(demo_audio_path())
    frames = pipe.run(demo_portrait(), (clip.samples[: 3 * clip.sample_rate].numpy(),
                                        clip.sample_rate)).frames.data.numpy()
    start, sizes = time.perf_counter(), []
    for frame in frames:
        buffer = io.BytesIO()
        Image.fromarray(frame).save(buffer, format="JPEG", quality=80)
        sizes.append(buffer.tell())
    jpeg_ms = (time.perf_counter() - start) * 1000 / len(frames)
    codec = av.CodecContext.create("libx264", "w")
    codec.width, codec.height = frames.shape[2], frames.shape[1]
    codec.pix_fmt, codec.time_base = "yuv420p", fractions.Fraction(1, 25)
    codec.options = {"preset": "ultrafast", "tune": "zerolatency"}
    start, h264_bytes = time.perf_counter(), 0
    for i, frame in enumerate(frames):
        picture = av.VideoFrame.from_ndarray(frame, format="rgb24").reformat(format="yuv420p")
        picture.pts = i
        h264_bytes += sum(packet.size for packet in codec.encode(picture))
    h264_bytes += sum(packet.size for packet in codec.encode(None))
    h264_ms = (time.perf_counter() - start) * 1000 / len(frames)
    return {"frames": len(frames), "jpeg_ms": jpeg_ms, "jpeg_kb": statistics.mean(sizes) / 1024,
            "h264_ms": h264_ms, "h264_kb": h264_bytes / len(frames) / 1024}


def _descendants_cpu_s(name_part: str) -> float:
    """User + system CPU seconds of this process's descendants whose name holds
    ``name_part`` (from ``/proc/PID/stat``, children counted while they live)."""
    ticks = os.sysconf("SC_CLK_TCK")
    parents, names, cpu = {}, {}, {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as stat:
                text = stat.read()
        except OSError:
            continue
        name = text[text.index("(") + 1:text.rindex(")")]
        fields = text[text.rindex(")") + 2:].split()
        pid = int(entry)
        parents[pid], names[pid] = int(fields[1]), name
        cpu[pid] = (int(fields[11]) + int(fields[12])) / ticks
    total, me = 0.0, os.getpid()
    for pid in cpu:
        ancestor = parents.get(pid)
        while ancestor not in (None, 0, 1, me):
            ancestor = parents.get(ancestor)
        if ancestor == me and name_part in names[pid]:
            total += cpu[pid]
    return total


def _process_cpu_s() -> float:
    times = os.times()
    return times.user + times.system


def page_figures(url: str, seconds: float) -> dict:
    """The page's stats after ``seconds``: mic alone, the demo clip alone, two mics at once;
    with the CPU share (of one core) Chromium and this process (the server) used meanwhile."""
    import soundfile
    from playwright.sync_api import sync_playwright

    from talkingface.assets import demo_audio_path
    from talkingface.io import load_audio

    chromium = shutil.which("chromium")
    if chromium is None:
        raise SystemExit("no chromium on PATH (apt-get install chromium), or pass --no-browser")
    speech = load_audio(demo_audio_path(), target_rate=48000).samples.numpy()
    results = {}
    with tempfile.TemporaryDirectory() as tmp, sync_playwright() as driver:
        wav = Path(tmp) / "mic.wav"
        soundfile.write(wav, speech, 48000, subtype="PCM_16")
        browser = driver.chromium.launch(executable_path=chromium, args=[
            "--no-sandbox", "--use-fake-ui-for-media-stream",
            "--use-fake-device-for-media-stream", f"--use-file-for-fake-audio-capture={wav}",
            "--autoplay-policy=no-user-gesture-required"])
        for name, autostart, count in (("mic", "mic", 1), ("demo clip", "demo", 1),
                                       ("2 x mic", "mic", 2)):
            pages = [browser.new_page() for _ in range(count)]
            started = time.monotonic()
            chromium_before, server_before = _descendants_cpu_s("chrom"), _process_cpu_s()
            for page in pages:
                page.goto(url + f"?autostart={autostart}")
            time.sleep(seconds)
            results[name] = [page.evaluate("({...window.talkingface.stats})") for page in pages]
            wall = time.monotonic() - started
            results[name + ", cpu"] = {
                "chromium_cores": (_descendants_cpu_s("chrom") - chromium_before) / wall,
                "server_cores": (_process_cpu_s() - server_before) / wall,
                "load_average": os.getloadavg()[0]}
            for page in pages:
                page.close()
            time.sleep(0.5)
        browser.close()
    return results


async def _cycle(url: str, pcm: bytes, rate: int, stop_midway: bool) -> None:
    from aiohttp import ClientSession, WSMsgType

    step = rate // 25 * 2
    async with ClientSession() as client, client.ws_connect(url) as ws:
        await ws.receive_json()
        await ws.send_str(json.dumps({"type": "start", "sampleRate": rate}))
        await ws.receive_json()
        for at in range(0, len(pcm), step):
            await ws.send_bytes(pcm[at:at + step])
            await asyncio.sleep(0.04)
        if stop_midway:
            return  # the tab closes while the stream runs
        await ws.send_str('{"type": "stop"}')
        async for msg in ws:
            if msg.type == WSMsgType.TEXT and json.loads(msg.data)["type"] == "ended":
                break


async def _receive_live(url: str, pcm: bytes, rate: int, seconds: float) -> dict:
    """One headless client: ``seconds`` of ``pcm`` sent in real time (40 ms messages, paced
    against the clock so a busy loop does not slow the audio down), frames counted."""
    from aiohttp import ClientSession, WSMsgType

    from talkingface.serve.session import FRAME_HEADER

    step = rate // 25 * 2
    arrivals, dropped = [], 0
    async with ClientSession() as client, client.ws_connect(url) as ws:
        await ws.receive_json()
        await ws.send_str(json.dumps({"type": "start", "sampleRate": rate}))
        await ws.receive_json()

        async def receive() -> None:
            nonlocal dropped
            async for msg in ws:
                if msg.type == WSMsgType.BINARY:
                    arrivals.append(time.monotonic())
                    dropped = FRAME_HEADER.unpack_from(msg.data)[1]
                elif json.loads(msg.data)["type"] == "ended":
                    return

        receiver = asyncio.create_task(receive())
        first = time.monotonic()
        sent = 0
        while sent * 0.04 < seconds:
            at = sent * step % (len(pcm) - step)
            await ws.send_bytes(pcm[at:at + step])
            sent += 1
            await asyncio.sleep(max(0.0, first + sent * 0.04 - time.monotonic()))
        await ws.send_str('{"type": "stop"}')
        await receiver
    # Frames per second after the first second (the start is measured by the page).
    steady = [t for t in arrivals if t >= first + 1.0]
    fps = (len(steady) - 1) / (steady[-1] - steady[0]) if len(steady) > 1 else 0.0
    return {"frames": len(arrivals), "fps": fps, "dropped": dropped,
            "start_ms": (arrivals[0] - first) * 1000 if arrivals else None}


def headless_sessions(server, count: int, seconds: float) -> dict:
    """``count`` headless clients at once, each streaming the demo speech for ``seconds``."""
    from talkingface.assets import demo_audio_path
    from talkingface.serve.uploads import pcm16

    rate = server.server.rate
    pcm = pcm16(server.server.pipe.load_audio(demo_audio_path()))
    url = f"ws://127.0.0.1:{server.port}/ws"

    async def together() -> list[dict]:
        return await asyncio.gather(*(_receive_live(url, pcm, rate, seconds)
                                      for _ in range(count)))

    started, cpu_before = time.monotonic(), _process_cpu_s()
    sessions = asyncio.run(together())
    wall = time.monotonic() - started
    return {"sessions": sessions, "server_cores": (_process_cpu_s() - cpu_before) / wall,
            "load_average": os.getloadavg()[0]}


def memory_cycles(server, cycles: int) -> dict:
    from talkingface.assets import demo_audio_path
    from talkingface.serve.uploads import pcm16

    rate = server.server.rate
    pcm = pcm16(server.server.pipe.load_audio(demo_audio_path()))[: int(0.3 * rate) * 2]
    url = f"ws://127.0.0.1:{server.port}/ws"
    threads_before = threading.active_count()
    marks = {}
    for i in range(cycles):
        asyncio.run(_cycle(url, pcm, rate, stop_midway=i % 2 == 1))
        if i + 1 in (10, cycles):
            time.sleep(1.0)  # let the last worker thread finish
            marks[i + 1] = rss_mb()
    live = [t.name for t in threading.enumerate() if t.name == "talkingface-live"]
    return {"cycles": cycles, "rss_after_10_mb": marks.get(10),
            "rss_after_last_mb": marks[cycles],
            "growth_mb": marks[cycles] - marks.get(10, marks[cycles]),
            "threads_before": threads_before, "threads_after": threading.active_count(),
            "live_stream_threads_left": len(live)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--cycles", type=int, default=50)
    parser.add_argument("--seconds", type=float, default=6.0,
                        help="how long each page runs before its figures are read")
    parser.add_argument("--no-browser", action="store_true", help="skip the page figures")
    parser.add_argument("--headless-sessions", type=int, default=0, metavar="N",
                        help="also run N browserless clients at once (then 1 .. N-1 alone "
                             "first) for --seconds each")
    parser.add_argument("--json", type=Path, help="write the results here too")
    args = parser.parse_args()

    from talkingface.api import Pipeline
    from talkingface.serve import BackgroundServer, ServeOptions

    pipe = Pipeline.from_config("realtime", ["threads=1"])
    results = {"machine": f"{platform.machine()}, {os.cpu_count()} CPUs",
               "load_average": os.getloadavg()}
    results["transport"] = transport(pipe)
    print("transport per frame:", json.dumps(results["transport"]))
    options = ServeOptions(sessions_per_minute=args.cycles + 60,
                           max_sessions=max(4, args.headless_sessions))
    with BackgroundServer(pipe, options) as server:
        if not args.no_browser:
            results["page"] = page_figures(server.url, args.seconds)
            for name, stats in results["page"].items():
                print(f"page, {name}:", json.dumps(stats))
        for count in range(1, args.headless_sessions + 1):
            results[f"headless x {count}"] = headless_sessions(server, count, args.seconds)
            print(f"headless, {count} at once:", json.dumps(results[f"headless x {count}"]))
        if args.cycles:
            results["memory"] = memory_cycles(server, args.cycles)
            print("memory:", json.dumps(results["memory"]))
    results["load_average_after"] = os.getloadavg()
    print(f"load average before {results['load_average']}, after {results['load_average_after']}")
    if args.json:
        args.json.write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
