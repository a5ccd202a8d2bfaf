import numpy as np
import pytest
import torch

from talkingface import hookimpl
from talkingface.api import Pipeline
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
    from talkingface.io import probe_media

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


def test_stream_chunks_with_live_controls_and_no_profile(pipe, image_array, speech):
    from talkingface.api import LiveControls

    batch = pipe.run(image_array, (speech.samples.numpy(), 16000)).frames
    batch_profile = pipe.last_profile
    chunks = speech.chunks(4410)  # any size
    live = LiveControls(pipe.graph.controls)
    streamed = Frames.concat(list(pipe.stream_chunks(image_array, chunks, controls=live,
                                                     profile=False)))
    assert torch.equal(batch.data, streamed.data)
    assert pipe.last_profile is not batch_profile
    assert not pipe.last_profile.events  # nothing recorded


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


@pytest.fixture
def speech_file(speech, tmp_path):
    """The speech clip as a 44.1 kHz stereo WAV (resampled and mixed down while streaming)."""
    import soundfile as sf

    from talkingface.io import resample

    up = resample(speech.samples, 16000, 44100).numpy()
    path = tmp_path / "speech.wav"
    sf.write(path, np.stack([up, 0.5 * up], axis=1), 44100, subtype="FLOAT")
    return path


def test_stream_from_a_file_equals_batch(pipe, image_array, speech_file):
    batch = pipe.run(image_array, speech_file).frames
    for chunk_s in (0.04, 0.33):
        streamed = Frames.concat(list(pipe.stream(image_array, speech_file, chunk_s=chunk_s)))
        assert torch.equal(batch.data, streamed.data)
    # The file is decoded chunk by chunk into the samples of the whole clip: first the audio
    # up to the first frame, then chunk_s pieces.
    clip = pipe.load_audio(speech_file)
    chunks = list(pipe.audio_chunks(speech_file, chunk_s=0.2))
    assert [c.num_samples for c in chunks] == [640] + [3200] * 9 + [2560]
    assert [c.offset for c in chunks] == [0] + [640 + 3200 * i for i in range(10)]
    assert torch.equal(torch.cat([c.samples for c in chunks]), clip.samples)


def test_the_first_frame_waits_only_for_the_audio_it_needs(pm, image_array, speech):
    from talkingface.api import cut_audio

    # The default pipeline's first frame needs its 40 ms, 40 ms of mouth anticipation and the
    # viseme encoder's 72.5 ms of lookahead: 152.5 ms, not the 200 ms of 0.2 s chunks.
    default = Pipeline.from_config("default")
    assert default.graph.first_frame_points(16000) == [1800, 2440]
    two = Pipeline.from_config("default", ["motion.params.anticipation_frames=2"])
    assert two.graph.first_frame_points(16000) == [1800, 2440, 3080]
    assert Pipeline.from_config("realtime").graph.first_frame_points(16000) == [1800, 2440]
    toy = Pipeline.from_config("toy", ["stream.chunk_s=0.25"], plugin_manager=pm)
    consumed = []

    def counted(chunks):
        for chunk in chunks:
            consumed.append(chunk.num_samples)
            yield chunk

    chunks = counted(toy.audio_chunks((speech.samples.numpy(), 16000)))
    first = next(toy.stream_chunks(image_array, chunks))
    assert first.num_frames == 1 and consumed == [640]  # toy stages: no lookahead
    for _ in toy.stream(image_array, (speech.samples.numpy(), 16000)):
        pass
    assert 40.0 <= toy.last_profile.start_latency_ms < 250.0  # not a whole 0.25 s chunk
    pieces = list(cut_audio(speech.chunks(3000), [10, 20]))
    assert [p.num_samples for p in pieces] == [10, 20, 2970] + [3000] * 9 + [2000]
    assert torch.equal(torch.cat([p.samples for p in pieces]), speech.samples)


def test_stream_from_a_bad_file_fails_before_streaming(pm, pipe, image_array, tmp_path):
    import soundfile as sf

    with pytest.raises(InputError, match="audio file not found"):
        pipe.stream(image_array, tmp_path / "missing.wav")
    silent = tmp_path / "silent.wav"
    sf.write(silent, np.zeros(32000, np.float32), 16000)
    with pytest.raises(InputError, match=r"audio is silent \(peak -inf dBFS\) in .*silent.wav"):
        pipe.stream(image_array, silent)
    allowed = Pipeline.from_config("toy", ["allow_silent=true"], plugin_manager=pm)
    assert sum(f.num_frames for f in allowed.stream(image_array, silent)) == 50
    with pytest.raises(InputError, match="chunk_s must be a positive"):
        pipe.stream(image_array, silent, chunk_s=-0.1)


@pytest.fixture
def torch_threads():
    """Restores torch's thread count after a test that changes it (it is process-wide)."""
    before = torch.get_num_threads()
    yield before
    torch.set_num_threads(before)


class _SettingsSeen:
    """A call_stage wrapper noting torch's thread count and the kernel backend in each call."""

    def __init__(self) -> None:
        self.seen: set[tuple[int, str]] = set()

    @hookimpl(wrapper=True)
    def call_stage(self, stage, method, args, kwargs):
        from talkingface import kernels

        self.seen.add((torch.get_num_threads(), kernels.get_default_backend()))
        return (yield)


@pytest.mark.parametrize("mode", ["run", "stream"])
def test_process_wide_settings_hold_during_a_run_and_are_restored(
    pm, torch_threads, image_array, speech, mode
):
    from talkingface import kernels

    spy = _SettingsSeen()
    pm.register(spy, name="settings-spy")
    try:
        pipe = Pipeline.from_config("toy", ["threads=1", "kernels.backend=torch"],
                                    plugin_manager=pm)
        assert torch.get_num_threads() == torch_threads  # building changes nothing
        audio = (speech.samples.numpy(), 16000)
        if mode == "run":
            pipe.run(image_array, audio)
        else:
            list(pipe.stream(image_array, audio))
        assert spy.seen == {(1, "torch")}
        assert torch.get_num_threads() == torch_threads
        assert kernels.get_default_backend() == "auto"
        spy.seen.clear()
        Pipeline.from_config("toy", plugin_manager=pm).run(image_array, audio)
        assert spy.seen == {(torch_threads, "auto")}  # threads=0 leaves torch's choice
    finally:
        pm.unregister(spy)


def test_negative_threads_is_a_config_error(pm):
    from talkingface.pipeline.errors import ConfigError

    with pytest.raises(ConfigError, match="threads must be 0 .* got -2"):
        Pipeline.from_config("toy", ["threads=-2"], plugin_manager=pm)


def test_file_sink_takes_the_frame_size_of_the_portrait(pm, image_array, speech, tmp_path):
    """A renderer whose frames have the portrait's size: the MP4 gets that size, whether the
    portrait comes prepared or is prepared by the run."""
    from talkingface.io import probe_media

    pipe = Pipeline.from_config("toy", ["render=framed"], plugin_manager=pm)
    audio = (speech.samples.numpy(), 16000)
    out = tmp_path / "raw.mp4"
    pipe.run(image_array, audio, output=out)
    assert (probe_media(out)["video"]["height"], probe_media(out)["video"]["width"]) == (80, 64)
    other = np.zeros((70, 96, 3), dtype=np.uint8)
    prepared = pipe.prepare(other)
    assert prepared.size == (70, 96) == pipe.graph.render.output_size
    pipe.run(prepared, audio, output=out)
    assert (probe_media(out)["video"]["height"], probe_media(out)["video"]["width"]) == (70, 96)


def test_stream_to_a_fragmented_mp4(pipe, image_array, speech, tmp_path):
    from talkingface.io import probe_media

    out = tmp_path / "live.mp4"
    frames = list(pipe.stream(image_array, (speech.samples.numpy(), 16000), output=out))
    assert sum(f.num_frames for f in frames) == 50
    info = probe_media(out)
    assert info["video"]["frames"] == 50 and info["video"]["width"] == 32
    assert (tmp_path / "live.yaml").exists()
    assert "generated" in " ".join(info["metadata"].values()).lower()


def test_a_failed_stream_leaves_no_file(pipe, image_array, speech, tmp_path):
    out = tmp_path / "live.mp4"
    with pytest.raises(InputError, match="audio file not found"):
        pipe.stream(image_array, tmp_path / "missing.wav", output=out)

    def broken_capture():
        yield from speech.chunks(3200)
        raise OSError("microphone unplugged")

    with pytest.raises(OSError, match="unplugged"):
        list(pipe.stream_chunks(image_array, broken_capture(), output=out))
    assert not out.exists() and not list(tmp_path.glob("*.mp4"))


def test_inputs_go_to_the_stages_that_declare_them(pm):
    from talkingface.pipeline.errors import InputError as Err

    pipe = Pipeline.from_config("sphinx", inputs={"text": "hello world"})
    assert pipe.config.audio.params.text == "hello world"
    with pytest.raises(Err, match="no stage of visemes>rules>meshwarp takes the input 'text'.*"
                                  "--preset sphinx.*audio=sphinx"):
        Pipeline.from_config("default", inputs={"text": "hello"})
    with pytest.raises(Err, match="the input 'text' is empty"):
        Pipeline.from_config("sphinx", inputs={"text": "  "})


def test_describe_plugins_lists_every_stage_and_preset(pm):
    from talkingface.api import describe_plugins, format_plugins

    data = describe_plugins(pm)
    names = {(s["kind"], s["name"]) for s in data["stages"]}
    assert {("audio", "visemes"), ("motion", "rules"), ("render", "meshwarp")} <= names
    sphinx = next(s for s in data["stages"] if s["name"] == "sphinx")
    assert sphinx["declares"]["inputs"] == ["text"]
    text = format_plugins(data)
    assert "audio encoders (audio=NAME):" in text and "presets (--preset NAME):" in text


def test_interleaved_streams_keep_their_own_settings(pm, torch_threads, image_array, speech):
    from talkingface import kernels

    spy = _SettingsSeen()
    pm.register(spy, name="settings-spy")
    try:
        audio = (speech.samples.numpy(), 16000)
        one = Pipeline.from_config("toy", ["threads=1"], plugin_manager=pm).stream(
            image_array, audio, chunk_s=0.2)
        other = Pipeline.from_config("toy", ["kernels.backend=torch"], plugin_manager=pm).stream(
            image_array, audio, chunk_s=0.2)
        next(one)
        assert (torch.get_num_threads(), kernels.get_default_backend()) == (torch_threads, "auto")
        next(other)
        list(one)  # the first stream ends while the second is half way
        assert (torch.get_num_threads(), kernels.get_default_backend()) == (torch_threads, "auto")
        list(other)
        assert (torch.get_num_threads(), kernels.get_default_backend()) == (torch_threads, "auto")
        assert spy.seen <= {(1, "auto"), (torch_threads, "torch")}
    finally:
        pm.unregister(spy)


def test_a_stream_to_a_file_writes_nothing_until_started(pipe, image_array, speech, tmp_path):
    import gc

    frames = pipe.stream(image_array, (speech.samples.numpy(), 16000), output=tmp_path / "a.mp4")
    del frames
    gc.collect()
    assert list(tmp_path.iterdir()) == []


def test_a_stream_stopped_early_ends_where_its_frames_do(pipe, image_array, speech, tmp_path):
    import warnings

    from talkingface.io import probe_media

    out = tmp_path / "early.mp4"
    frames = pipe.stream(image_array, (speech.samples.numpy(), 16000), chunk_s=0.04, output=out)
    shown = 0
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no "frames short of the audio" padding
        for chunk in frames:
            shown += chunk.num_frames
            if shown >= 10:
                break
        frames.close()
    info = probe_media(out)
    assert info["video"]["frames"] == shown and 0 < shown < 50
    assert info["video"]["duration"] == pytest.approx(shown / 25, abs=1e-3)


def test_inputs_are_taken_literally_and_named_in_errors(pm):
    with pytest.raises(InputError, match=r"the input 'text' contains '\$\{'"):
        Pipeline.from_config("sphinx", inputs={"text": "costs ${seed} dollars"})
    with pytest.raises(InputError, match="bad value for the input.*'text'"):
        Pipeline.from_config("sphinx", inputs={"text": ["a", "list"]})
