import numpy as np
import pytest
import torch

from talkingface.pipeline.api import Pipeline
from talkingface.pipeline.contracts import Frames
from talkingface.pipeline.errors import InputError


@pytest.fixture
def pipe(pm):
    return Pipeline.from_config("toy", ["render.params.size=32"], plugin_manager=pm)


@pytest.fixture
def image_array():
    g = np.random.default_rng(0)
    return g.integers(0, 256, (80, 64, 3), dtype=np.uint8)


def test_run_on_arrays_returns_frames(pipe, image_array, speech):
    result = pipe.run(image_array, (speech.samples.numpy(), speech.sample_rate))
    assert isinstance(result.frames, Frames) and result.frames.num_frames == 50
    assert result.profile.frames == 50


def test_audio_array_needs_a_rate(pipe, image_array, speech):
    with pytest.raises(InputError, match="sample rate"):
        pipe.run(image_array, speech.samples)


def test_audio_is_resampled_once_to_the_encoder_rate(pipe, image_array, speech):
    up = torch.repeat_interleave(speech.samples, 3).numpy()
    result = pipe.run(image_array, (up, 48000))
    assert result.frames.num_frames == 50


def test_silent_audio_is_refused_unless_allowed(pm, image_array):
    silent = (np.zeros(16000, dtype=np.float32), 16000)
    with pytest.raises(InputError, match="silent"):
        Pipeline.from_config("toy", plugin_manager=pm).run(image_array, silent)
    frames = Pipeline.from_config("toy", ["allow_silent=true"], plugin_manager=pm).run(
        image_array, silent).frames
    assert frames.num_frames == 25


def test_run_to_file_writes_mp4_and_config(pipe, image_array, speech, tmp_path):
    from talkingface.pipeline.media import probe_media

    out = tmp_path / "out.mp4"
    result = pipe.run(image_array, (speech.samples.numpy(), 16000), output=out)
    assert result.frames is None and out.exists()
    saved = (tmp_path / "out.yaml").read_text()
    assert "size: 32" in saved
    info = probe_media(out)
    assert info["video"]["width"] == 32
    assert abs(info["video"]["duration"] - info["audio"]["duration"]) <= 1 / 25 + 1e-3
    meta = " ".join(str(v) for v in info["metadata"].values())
    assert "generated" in meta.lower()


def test_output_must_be_mp4(pipe, image_array, speech, tmp_path):
    with pytest.raises(InputError, match=".mp4"):
        pipe.run(image_array, (speech.samples.numpy(), 16000), output=tmp_path / "out.avi")


def test_stream_equals_batch_through_the_api(pipe, image_array, speech):
    audio = (speech.samples.numpy(), 16000)
    batch = pipe.run(image_array, audio).frames
    streamed = Frames.concat(list(pipe.stream(image_array, audio, chunk_s=0.12)))
    assert torch.equal(batch.data, streamed.data)
    assert pipe.last_profile.start_latency_ms is not None


def test_prepare_once_run_twice(pipe, image_array, speech):
    prepared = pipe.prepare(image_array)
    audio = (speech.samples.numpy(), 16000)
    a = pipe.run(prepared, audio).frames
    b = pipe.run(prepared, audio).frames
    assert torch.equal(a.data, b.data)


def test_same_seed_same_video_through_config(pm, image_array, speech):
    audio = (speech.samples.numpy(), 16000)
    a = Pipeline.from_config("toy", ["seed=3"], plugin_manager=pm).run(image_array, audio)
    b = Pipeline.from_config("toy", ["seed=3"], plugin_manager=pm).run(image_array, audio)
    assert torch.equal(a.frames.data, b.frames.data)


def test_failed_run_keeps_an_earlier_output(pipe, image_array, speech, tmp_path, monkeypatch):
    out = tmp_path / "out.mp4"
    audio = (speech.samples.numpy(), 16000)
    pipe.run(image_array, audio, output=out)
    before = out.read_bytes()
    render = pipe.graph.render.render
    calls = []

    def failing(prepared, motion):
        calls.append(1)
        if len(calls) > 2:
            raise RuntimeError("renderer broke")
        return render(prepared, motion)

    monkeypatch.setattr(pipe.graph.render, "render", failing)
    with pytest.raises(RuntimeError, match="renderer broke"):
        pipe.run(image_array, audio, output=out)
    assert out.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.mp4", "out.yaml"]
