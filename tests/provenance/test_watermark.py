"""The invisible watermark: payload, invisibility, robustness to the common edits, no false
alarm on unmarked content, and every sink of the pipeline receiving marked frames."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from talkingface.api import Pipeline
from talkingface.assets import demo_portrait
from talkingface.pipeline.errors import ConfigError, ContractError
from talkingface.provenance import verify_file
from talkingface.provenance.watermark import (
    MAGIC,
    THRESHOLD,
    VERSION,
    Watermarker,
    detect,
    payload_bits,
)


@pytest.fixture(scope="module")
def clip():
    """12 frames of the demo portrait, each shifted a little as a talking head moves."""
    base = demo_portrait().pixels.numpy()
    return np.stack([np.roll(base, (i % 3, i % 2), axis=(0, 1)) for i in range(12)])


@pytest.fixture(scope="module")
def marked(clip):
    return Watermarker(user=1234).embed(clip)


def _h264(frames: np.ndarray, crf: int) -> np.ndarray:
    from talkingface.io import h264_round_trip

    return h264_round_trip(frames, crf)


def test_payload_layout():
    bits = payload_bits(5)
    word = int("".join("1" if b > 0 else "0" for b in bits), 2)
    assert word >> 16 == MAGIC and (word >> 12) & 0xF == VERSION and word & 0xFFF == 5
    with pytest.raises(ValueError, match="0..4095"):
        payload_bits(4096)


def test_the_mark_is_invisible_by_psnr_and_ssim(clip, marked):
    from talkingface.compare.metrics import psnr, ssim

    assert marked.dtype == np.uint8 and marked.shape == clip.shape
    assert psnr(marked[0], clip[0]) >= 40.0 and ssim(marked[0], clip[0]) >= 0.99
    flat = np.full((1, 256, 256, 3), 128, np.uint8)
    assert np.sqrt(np.mean((Watermarker().embed(flat).astype(float) - 128) ** 2)) < 1.0
    busy = np.random.default_rng(0).integers(0, 256, (1, 256, 256, 3), dtype=np.uint8)
    assert psnr(Watermarker(strength=4.0).embed(busy)[0], busy[0]) >= 40.0  # the PSNR floor


def test_found_with_its_payload(marked):
    report = detect(marked)
    assert report.found and report.z > 2 * THRESHOLD - 3
    assert report.magic_ok and report.version == VERSION and report.user == 1234
    assert report.bit_errors == 0 and report.frames == len(marked)


def test_not_found_on_unmarked_frames(clip):
    report = detect(clip)
    assert not report.found and report.z < THRESHOLD - 1.5


@pytest.mark.parametrize("edit", ["h264", "crop", "crop_resized", "scaled_256", "brighter"])
def test_survives_common_edits(marked, edit):
    # Half a second of a nearly still, smooth synthetic face is a hard case; the benchmark
    # (benchmarks/bench_watermark.py) measures 5-second talking clips up to CRF 35.
    if edit == "h264":
        frames = _h264(marked, 28)
    elif edit == "crop":
        frames = marked[:, 51:-51, 51:-51]
    elif edit == "crop_resized":
        frames = np.stack([cv2.resize(f[51:-51, 51:-51], (512, 512)) for f in marked])
    elif edit == "scaled_256":
        frames = np.stack([cv2.resize(cv2.resize(f, (256, 256), interpolation=cv2.INTER_AREA),
                                      (512, 512)) for f in marked])
    else:
        frames = np.clip(marked * 1.15 + 8, 0, 255).astype(np.uint8)
    report = detect(frames)
    assert report.found, report


def test_every_sink_gets_marked_frames(pm, speech, tmp_path):
    image = demo_portrait().pixels.numpy()
    audio = (speech.samples.numpy(), 16000)
    pipe = Pipeline.from_config("toy", ["render.params.size=128",
                                        f"output.frames_dir={tmp_path / 'png'}"],
                                plugin_manager=pm)
    assert detect(pipe.run(image, audio).frames.data.numpy()).found  # in memory
    streamed = np.concatenate([f.data.numpy() for f in pipe.stream(image, audio)])
    assert detect(streamed).found  # streaming
    pipe.run(image, audio, output=tmp_path / "out.mp4")  # file, and PNG dumps beside it
    assert verify_file(tmp_path / "out.mp4").watermark.found
    assert verify_file(sorted((tmp_path / "png").glob("*.png"))[0]).watermark.found


def test_turning_it_off_is_explicit_and_recorded(pm, speech, tmp_path):
    image = demo_portrait().pixels.numpy()
    pipe = Pipeline.from_config("toy", ["render.params.size=128", "watermark.enabled=false"],
                                plugin_manager=pm)
    out = tmp_path / "plain.mp4"
    frames = pipe.run(image, (speech.samples.numpy(), 16000), output=out)
    assert frames.frames is None
    report = verify_file(out)
    assert not report.watermark.found and report.tagged  # the tags still say generated
    from talkingface.io import probe_media

    assert probe_media(out)["metadata"]["watermark"].startswith("off")
    assert "enabled: false" in (tmp_path / "plain.yaml").read_text()
    with pytest.raises(ConfigError, match="watermark.user must be in 0..4095"):
        Pipeline.from_config("toy", ["watermark.user=5000"], plugin_manager=pm)


def test_a_filter_that_drops_frames_is_refused(pm, speech):
    from talkingface.pipeline.contracts import Frames
    from talkingface.pipeline.graph import StageGraph
    from talkingface.pipeline.stages import FrameFilter
    from tests.pipeline.toy_stages import FlatRenderer, RmsEncoder, SmoothJaw

    class Dropper(FrameFilter):
        name = "dropper"

        def apply(self, frames):
            return Frames(frames.data[:1], frames.fps, frames.start_frame)

    graph = StageGraph(RmsEncoder(), SmoothJaw(), FlatRenderer(), plugin_manager=pm,
                       frame_filters=[Dropper()])
    with pytest.raises(ContractError, match="frame filter 'dropper' must return Frames"):
        graph.run(demo_portrait(), speech)


def test_detector_input_is_checked():
    with pytest.raises(ValueError, match=r"uint8 RGB \[H, W, 3\]"):
        detect([np.zeros((64, 64, 4), np.uint8)])
    with pytest.raises(ValueError, match="one size"):
        detect([np.zeros((64, 64, 3), np.uint8), np.zeros((80, 64, 3), np.uint8)])
