"""The live page in a real browser: Debian's Chromium driven by Playwright, a fake microphone
fed from a WAV, the realtime preset on 127.0.0.1. Skipped, with the reason, where Chromium or
Playwright is missing.

Timing targets (start latency <= 300 ms, 25 fps, A/V offset within +-40 ms) hold for a 2-core
CPU that is not busy with other work; the timing test first measures how fast this machine
renders right now and skips, saying so, when the pipeline alone cannot reach real time with
room for the browser (a CI runner shared with other jobs).
"""

from __future__ import annotations

import os
import shutil
import time

import numpy as np
import pytest

from talkingface.api import Pipeline
from talkingface.serve import BackgroundServer, ServeOptions

playwright = pytest.importorskip(
    "playwright.sync_api", reason="Playwright for Python is not installed (pip install -e .[dev])")
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(CHROMIUM is None, reason="no chromium on PATH: apt-get install chromium "
                                                "(.ci/run does, as root)"),
]

MOUTH = (210, 340, 90, 50)
"""x, y, width, height of the demo portrait's mouth in the 512² frames: its mean brightness
falls as the jaw opens (correlation -0.84 with jaw_open on the demo clip)."""
POLL_MS = 100
"""Waits poll on a timer: a page waiting for a click draws nothing, so display ticks are not
a clock to rely on."""
FAST_ENOUGH_FPS = 30.0
"""Offline frame rate the pipeline must reach on one thread for the timing test to hold it to
the live targets (25 fps, plus room for the browser on the same CPU)."""


@pytest.fixture(scope="module")
def pipe():
    return Pipeline.from_config("realtime", ["threads=1"])


@pytest.fixture(scope="module")
def server(pipe):
    with BackgroundServer(pipe, ServeOptions(sessions_per_minute=120)) as running:
        yield running


@pytest.fixture(scope="module")
def mic_wav(tmp_path_factory, pipe):
    """The fake microphone: 3 s of the demo speech then 2 s of silence, at 48 kHz (Chromium
    loops it)."""
    import soundfile

    from talkingface.assets import demo_audio_path
    from talkingface.io import load_audio

    speech = load_audio(demo_audio_path(), target_rate=48000).samples.numpy()[: 3 * 48000]
    path = tmp_path_factory.mktemp("mic") / "mic.wav"
    soundfile.write(path, np.concatenate([speech, np.zeros(2 * 48000, np.float32)]), 48000,
                    subtype="PCM_16")
    return path


@pytest.fixture(scope="module")
def browser(mic_wav):
    with playwright.sync_playwright() as driver:
        chromium = driver.chromium.launch(executable_path=CHROMIUM, args=[
            "--no-sandbox",  # CI runs as root
            "--use-fake-ui-for-media-stream",
            "--use-fake-device-for-media-stream",
            f"--use-file-for-fake-audio-capture={mic_wav}",
            "--autoplay-policy=no-user-gesture-required",
        ])
        yield chromium
        chromium.close()


def open_page(browser, url: str):
    page = browser.new_page(viewport={"width": 1000, "height": 860})
    page.goto(url)
    return page


def wait_for_frames(page, count: int, timeout_s: float = 20.0) -> dict:
    page.wait_for_function(f"window.talkingface && window.talkingface.stats.framesShown >= {count}",
                           timeout=timeout_s * 1000, polling=POLL_MS)
    return page.evaluate("({...window.talkingface.stats})")


def offline_fps(pipe, server) -> float:
    """Frames per second the pipeline makes right now on this CPU (the faster of two streams
    of 1.6 s of speech in 40 ms chunks, with the server's settings)."""
    from talkingface.assets import demo_audio_path

    prepared = server.server.portraits.get("demo")
    chunks = list(pipe.load_audio(demo_audio_path()).chunks(640))[:40]
    rates = []
    for _ in range(2):
        start = time.perf_counter()
        frames = sum(f.num_frames for f in pipe.stream_chunks(prepared, chunks, profile=False))
        rates.append(frames / (time.perf_counter() - start))
    return max(rates)


def test_frames_arrive_from_the_microphone(browser, server):
    page = open_page(browser, server.url + "?autostart=mic")
    stats = wait_for_frames(page, 25)
    assert stats["startLatencyMs"] > 0 and stats["framesShown"] >= 25
    assert page.evaluate("window.talkingface.lastFrameIndex") >= 24
    assert page.locator("#ai-label").is_visible()
    assert page.locator("#message").text_content() == ""
    shot = page.screenshot()
    assert shot[:4] == b"\x89PNG"
    if os.environ.get("TALKINGFACE_SCREENSHOT"):  # the README's picture: the same setup
        page.screenshot(path=os.environ["TALKINGFACE_SCREENSHOT"])
    page.close()


def test_the_mouth_follows_the_loudness(browser, server):
    page = open_page(browser, server.url + "?autostart=mic")
    wait_for_frames(page, 5)
    samples = page.evaluate("""async ([x, y, w, h]) => {
        const face = document.getElementById("face").getContext("2d");
        const out = [];
        let last = -1;
        const t0 = performance.now();
        while (performance.now() - t0 < 6000) {
            await new Promise((r) => requestAnimationFrame(r));
            const index = window.talkingface.lastFrameIndex;
            if (index === last) continue;
            last = index;
            const d = face.getImageData(x, y, w, h).data;
            let sum = 0;
            for (let k = 0; k < d.length; k += 4) sum += d[k] + d[k + 1] + d[k + 2];
            out.push([index, sum / (3 * d.length / 4)]);
        }
        return out;
    }""", list(MOUTH))
    levels = dict(page.evaluate("Array.from(window.talkingface.audioLevels)"))
    page.close()
    pairs = np.array([(levels[i], luma) for i, luma in samples if i in levels])
    pairs = pairs[np.argsort(pairs[:, 0])]
    third = len(pairs) // 3
    assert third >= 4, f"only {len(pairs)} frames shown in 6 s"
    quiet, loud = pairs[:third], pairs[-third:]
    assert loud[:, 0].min() > quiet[:, 0].max() + 20  # speech vs the file's silence (dB)
    # An open mouth shows its dark inside: loud speech darkens the mouth region.
    assert loud[:, 1].mean() < quiet[:, 1].mean() - 3, (loud[:, 1].mean(), quiet[:, 1].mean())


def _within_targets(stats: dict, source: str) -> bool:
    """The targets: start latency (from the first microphone sample sent; a clip starts
    playing 50 ms after its first frame arrives, on purpose) <= 300 ms, 25 fps (display ticks
    round it to 24-26), A/V offset within +-40 ms."""
    started = source != "mic" or stats["startLatencyMs"] <= 300
    return started and stats["fps"] >= 24 and abs(stats["avOffsetMs"]) <= 40


def test_latency_fps_and_av_offset_within_target(browser, server, pipe):
    fps_now = offline_fps(pipe, server)
    if fps_now < FAST_ENOUGH_FPS:
        pytest.skip(f"this CPU is busy: the pipeline alone makes {fps_now:.0f} frames/s now "
                    f"(the live targets need {FAST_ENOUGH_FPS:.0f} on one thread)")
    figures = {}
    for autostart in ("mic", "demo"):
        for _attempt in range(2):  # a start can meet another job's burst on a shared CPU
            page = open_page(browser, server.url + f"?autostart={autostart}")
            stats = wait_for_frames(page, 75)  # 3 s: past the first second
            page.close()
            figures.setdefault(autostart, []).append(stats)
            if _within_targets(stats, autostart):
                break
    missed = {k: v for k, v in figures.items() if not _within_targets(v[-1], k)}
    if missed:
        fps_after = offline_fps(pipe, server)
        if fps_after < FAST_ENOUGH_FPS:
            pytest.skip(f"the CPU got busy during the test ({fps_after:.0f} frames/s offline "
                        f"after it); figures: {missed}")
    assert not missed, f"outside the targets (300 ms, 25 fps, +-40 ms): {missed}"


def test_two_sessions_at_once(browser, server):
    pages = [open_page(browser, server.url + "?autostart=mic") for _ in range(2)]
    for page in pages:
        wait_for_frames(page, 25)
    assert server.server._hello()["sessions"] == 2
    counts = [page.evaluate("window.talkingface.stats.framesShown") for page in pages]
    for page, count in zip(pages, counts, strict=True):  # both still going
        wait_for_frames(page, count + 10, timeout_s=10)
    for page in pages:
        page.close()


def test_a_bad_upload_gets_a_message_and_the_server_keeps_serving(browser, server, mic_wav,
                                                                  tmp_path):
    fake = tmp_path / "portrait.png"
    fake.write_bytes(b"this is not a picture")
    page = open_page(browser, server.url)
    page.wait_for_function("window.talkingface && window.talkingface.ready", polling=POLL_MS)
    page.set_input_files("#portrait-file", str(fake))
    page.wait_for_function("document.getElementById('message').textContent.includes('cannot')",
                           polling=POLL_MS)
    assert "jpg, png or webp" in page.locator("#message").text_content()
    from talkingface.assets import demo_portrait_path

    page.set_input_files("#portrait-file", str(demo_portrait_path()))  # a good one is taken
    page.wait_for_function("window.talkingface.state.portrait !== 'demo'", polling=POLL_MS)
    assert page.locator("#message").text_content() == ""
    page.set_input_files("#audio-file", str(mic_wav))  # "Play a file" drives that portrait
    wait_for_frames(page, 10)
    assert page.locator("#message").text_content() == ""
    page.close()


def test_a_token_protected_server_refuses_a_page_without_it(browser, pipe):
    options = ServeOptions(token="s3cret-token")
    with BackgroundServer(pipe, options, warm_up=False) as guarded:
        bare = guarded.url.split("?")[0]
        page = browser.new_page()
        response = page.goto(bare)
        assert response.status == 401
        assert "needs its token" in page.content()
        page.fill("input[name=token]", "s3cret-token")
        page.click("button")
        page.wait_for_function("window.talkingface && window.talkingface.ready", polling=POLL_MS)
        page.close()


# A browser that blocks sound until the user clicks, as desktop Chromium does. Headless Chromium
# applies that policy only sometimes (it let the AudioContext start in 2 of 5 runs), so the
# test states it: the page's own code sees a suspended context until a click.
SOUND_AFTER_A_CLICK = """
(() => {
  let clicked = false;
  document.addEventListener("click", () => { clicked = true; }, true);
  const resume = AudioContext.prototype.resume;
  AudioContext.prototype.resume = function () {
    return clicked ? resume.call(this) : new Promise(() => {});
  };
  const state = Object.getOwnPropertyDescriptor(BaseAudioContext.prototype, "state");
  Object.defineProperty(BaseAudioContext.prototype, "state", {
    get() { return clicked ? state.get.call(this) : "suspended"; },
  });
})();
"""


def test_autostart_without_a_click_asks_for_one(browser, server):
    strict = browser.browser_type.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
    try:
        page = strict.new_page()
        page.add_init_script(SOUND_AFTER_A_CLICK)
        page.goto(server.url + "?autostart=demo")
        page.wait_for_function(
            "document.getElementById('message').textContent.includes('Click the page')",
            polling=POLL_MS)
        assert page.evaluate("window.talkingface.stats.framesShown") == 0
        page.mouse.click(700, 700)
        wait_for_frames(page, 5)
    finally:
        strict.close()
