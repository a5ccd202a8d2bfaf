import pytest
import torch

from talkingface.pipeline.config import load_config
from talkingface.pipeline.contracts import Audio, Controls, Frames
from talkingface.pipeline.errors import CompatibilityError, ContractError
from talkingface.pipeline.graph import LiveControls, Sink, StageGraph
from tests.pipeline.toy_stages import (
    FlatRenderer,
    NeedsBlink,
    RmsEncoder,
    SmoothJaw,
    _SmoothJawStream,
)


def graph(pm, controls, render=None, chunk_frames=4):
    return StageGraph(RmsEncoder(), SmoothJaw(), render or FlatRenderer(), fps=25,
                      chunk_frames=chunk_frames, controls=controls, plugin_manager=pm)


class RecordingSink(Sink):
    def __init__(self):
        self.sizes = []
        self.frames = []

    def write(self, frames):
        self.sizes.append(frames.num_frames)
        self.frames.append(frames)

    def close(self):
        return "closed"


def test_batch_run_writes_bounded_chunks(pm, controls, portrait, speech):
    sink = RecordingSink()
    result = graph(pm, controls).run(portrait, speech, sink)
    assert result.output == "closed"
    assert result.frames is None
    assert sum(sink.sizes) == 50  # 2 s at 25 fps
    assert max(sink.sizes) <= 4
    starts = [f.start_frame for f in sink.frames]
    assert starts == sorted(starts) and starts[0] == 0


def test_batch_collects_frames_in_memory(pm, controls, portrait, speech):
    result = graph(pm, controls).run(portrait, speech)
    assert isinstance(result.frames, Frames)
    assert result.frames.num_frames == result.motion.num_frames == 50
    assert result.frames.size == (16, 16)


@pytest.mark.parametrize("chunk_s", [0.04, 0.2, 0.33])
def test_streaming_equals_batch(pm, controls, portrait, speech, chunk_s):
    g = graph(pm, controls)
    batch = g.run(portrait, speech).frames
    step = int(chunk_s * speech.sample_rate)
    streamed = Frames.concat(list(g.stream(portrait, speech.chunks(step))))
    assert streamed.num_frames == batch.num_frames
    assert torch.equal(streamed.data, batch.data)


def test_streaming_emits_after_first_chunk(pm, controls, portrait, speech):
    g = graph(pm, controls)
    step = int(0.2 * speech.sample_rate)
    it = g.stream(portrait, speech.chunks(step))
    first = next(it)
    assert first.start_frame == 0 and first.num_frames > 0
    list(it)
    prof = g.last_profile
    assert prof.mode == "stream"
    # 200 ms of audio must arrive first; compute adds a little on top.
    assert 200 <= prof.start_latency_ms < 2000


def test_the_graph_refuses_audio_at_another_rate(pm, controls, portrait, speech):
    # Converting rates is the application layer's job (Pipeline, talkingface.io).
    g = graph(pm, controls)
    audio48 = Audio(torch.repeat_interleave(speech.samples, 3), 48000)
    with pytest.raises(ContractError, match="48000 Hz.*16000 Hz: resample it first"):
        list(g.stream(portrait, audio48.chunks(9600)))
    with pytest.raises(ContractError, match="48000 Hz.*16000 Hz: resample it first"):
        g.run(portrait, audio48)


def test_incompatible_renderer_names_both_stages(pm, controls):
    with pytest.raises(CompatibilityError) as err:
        graph(pm, controls, render=NeedsBlink())
    msg = str(err.value)
    assert "needsblink" in msg and "smoothjaw" in msg and "blink_l" in msg


def test_incompatible_features_refused_before_load(pm, controls):
    class EnergyOnly(SmoothJaw):
        name = "energyonly"
        accepts = ("energy",)

        def load(self):
            raise AssertionError("must not load before the compatibility check")

    with pytest.raises(CompatibilityError, match="energyonly.*rms|rms.*energyonly"):
        StageGraph(RmsEncoder(), EnergyOnly(), FlatRenderer(), plugin_manager=pm)


class ToyLatentJaw(SmoothJaw):
    """A generator whose motion carries a latent in its own space (like JoyVASA's)."""

    name = "toylatent"
    space = "toy-latent"
    provides = ()

    def load(self):
        raise AssertionError("must not load before the compatibility check")


class LatentOnly(FlatRenderer):
    name = "latentonly"
    requires = ()
    spaces = ("toy-latent",)
    semantic = False


class LatentOrSemantic(FlatRenderer):
    name = "either"
    spaces = ("other-latent",)


def test_a_latent_in_a_space_the_renderer_does_not_take_is_refused_naming_both(pm):
    for render in (FlatRenderer(), LatentOrSemantic()):
        with pytest.raises(CompatibilityError) as err:
            StageGraph(RmsEncoder(), ToyLatentJaw(), render, plugin_manager=pm)
        msg = str(err.value)
        assert "toylatent" in msg and render.name in msg and "'toy-latent'" in msg
        assert "semantic pose and expression" in msg
    with pytest.raises(CompatibilityError, match="'other-latent' or semantic"):
        StageGraph(RmsEncoder(), ToyLatentJaw(), LatentOrSemantic(), plugin_manager=pm)


def test_a_renderer_that_needs_a_latent_refuses_semantic_motion(pm):
    with pytest.raises(CompatibilityError, match="latentonly.*toy-latent.*smoothjaw"):
        StageGraph(RmsEncoder(), SmoothJaw(), LatentOnly(), plugin_manager=pm)


def test_renderers_taking_the_space_accept_the_latent_generator(pm):
    class EitherToy(LatentOrSemantic):
        spaces = ("other-latent", "toy-latent")

    for render in (LatentOnly(), EitherToy()):
        StageGraph(RmsEncoder(), ToyLatentJaw(), render, plugin_manager=pm)
    StageGraph(RmsEncoder(), SmoothJaw(), EitherToy(), plugin_manager=pm)


def test_profile_has_a_row_per_stage(pm, controls, portrait, speech, tmp_path):
    result = graph(pm, controls).run(portrait, speech)
    prof = result.profile
    kinds = {(r["kind"], r["method"]) for r in prof.rows()}
    assert {("audio", "encode"), ("motion", "generate"), ("render", "render"),
            ("render", "prepare")} <= kinds
    render_row = next(r for r in prof.rows() if r["method"] == "render")
    assert render_row["frames"] == 50 and render_row["calls"] == 13
    assert prof.real_time_factor is not None and prof.real_time_factor > 0
    assert "render" in prof.table()
    trace = prof.write_chrome_trace(tmp_path / "t.json").read_text()
    assert '"ph": "X"' in trace
    assert '"stages"' in prof.write_json(tmp_path / "p.json").read_text()


def test_profiler_is_removed_after_run(pm, controls, portrait, speech):
    before = len(pm.pm.get_plugins())
    graph(pm, controls).run(portrait, speech)
    assert len(pm.pm.get_plugins()) == before


def test_graph_rejects_wrong_audio(pm, controls, portrait):
    with pytest.raises(ContractError):
        graph(pm, controls).run(portrait, torch.zeros(100))


def test_from_config_builds_the_named_stages(pm, portrait, speech):
    from talkingface.api import Pipeline

    cfg = load_config("toy", ["render.params.size=8", "motion=jaw"], registry=pm.registry)
    pipe = Pipeline(cfg, plugin_manager=pm)
    assert pipe.description == "rms>smoothjaw>flat"
    frames = pipe.run(portrait, speech).frames
    assert frames.size == (8, 8)


def test_prepared_portrait_for_another_renderer_is_refused(pm, controls, portrait, speech):
    g = graph(pm, controls)
    prepared = g.prepare(portrait)
    other = prepared.__class__(prepared.portrait, "other", prepared.size, prepared.state)
    with pytest.raises(ContractError, match="prepare it again"):
        g.run(other, speech)


def test_long_audio_is_encoded_in_exact_blocks(pm, controls, portrait, speech):
    g = graph(pm, controls)
    whole = g.run(portrait, speech).features
    g.encode_block_s = 0.3
    blocks = g.run(portrait, speech).features
    assert blocks.num_frames == whole.num_frames
    assert torch.equal(blocks.values, whole.values)


class _SteerableJawStream(_SmoothJawStream):
    """The toy generator's stream, taking new controls mid-stream and logging every call."""

    def __init__(self, gen, controls):
        super().__init__(gen, controls)
        self.log = []

    def push(self, feats):
        self.log.append(("push", feats.start_frame))
        return super().push(feats)

    def set_controls(self, controls):
        self.log.append(("set", controls.head_distance))
        self.controls = controls


class SteerableJaw(SmoothJaw):
    def stream(self, controls):
        self.last_stream = _SteerableJawStream(self, controls)
        return self.last_stream


def test_live_controls_reach_the_motion_stage_before_the_next_chunk(pm, controls, portrait,
                                                                    speech):
    gen = SteerableJaw()
    g = StageGraph(RmsEncoder(), gen, FlatRenderer(), fps=25, chunk_frames=4,
                   controls=controls, plugin_manager=pm)
    live = LiveControls(controls)
    step = int(0.2 * speech.sample_rate)

    def chunks():
        for i, chunk in enumerate(speech.chunks(step)):
            if i == 3:  # the graph asks for the 4th chunk: the change must come before it
                live.update(head_distance=1.5)
            yield chunk

    list(g.stream(portrait, chunks(), controls=live))
    log = gen.last_stream.log
    assert log.count(("set", 1.5)) == 1
    assert [entry[0] for entry in log[:5]] == ["push", "push", "push", "set", "push"]
    assert g.takes_live_controls()


def test_live_controls_without_a_change_stream_as_batch(pm, controls, portrait, speech):
    g = graph(pm, controls)
    batch = g.run(portrait, speech).frames
    streamed = Frames.concat(list(g.stream(portrait, speech.chunks(3200),
                                           controls=LiveControls(controls))))
    assert torch.equal(streamed.data, batch.data)


def test_a_generator_without_set_controls_refuses_a_change_by_name(pm, controls, portrait,
                                                                   speech):
    g = graph(pm, controls)
    assert not g.takes_live_controls()
    live = LiveControls(controls)
    frames = g.stream(portrait, speech.chunks(3200), controls=live)
    next(frames)
    live.update(emotion="happy")
    with pytest.raises(CompatibilityError, match="'smoothjaw' cannot change controls"):
        list(frames)


def test_live_controls_are_validated_like_controls():
    live = LiveControls()
    with pytest.raises(ContractError, match="emotion must be one of"):
        live.update(emotion="furious")
    with pytest.raises(TypeError):
        live.update(mood="happy")
    assert live.current.emotion == "neutral"
    assert live.changed_since(live.snapshot()[1]) is None
    live.set(Controls(head_motion=0.5))
    assert live.current.head_motion == 0.5


def test_skipped_frames_are_not_rendered_and_the_rest_match_batch(pm, controls, portrait, speech):
    g = graph(pm, controls)
    batch = g.run(portrait, speech).frames
    asked = []

    def skip_all_but_the_newest(start, stop):
        asked.append((start, stop))
        return stop - start - 1

    parts = list(g.stream(portrait, speech.chunks(6400), skip_frames=skip_all_but_the_newest))
    shown = [part.start_frame + i for part in parts for i in range(part.num_frames)]
    assert shown == [stop - 1 for _, stop in asked]  # the newest of every piece, only
    assert len(shown) < batch.num_frames
    for part in parts:
        assert torch.equal(part.data, batch.data[part.start_frame:part.start_frame + 1])
