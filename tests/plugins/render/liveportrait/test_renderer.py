"""Tests of the ``liveportrait`` renderer on small random networks saved in the published layout:
the conformance suite, neutral motion, the lips (open with the jaw, closed by a press), the
latent path through the graph, paste-back, missing weights, the pipeline end to end and
``talkingface compare``. Random weights draw noise, so checks are at the keypoint level or
compare frames of the same networks with each other."""

from __future__ import annotations

import tempfile
from functools import cache
from pathlib import Path

import pytest
import torch
from omegaconf import OmegaConf

from talkingface.pipeline.contracts import (
    EXPRESSION_NAMES,
    LIVEPORTRAIT_SPACE,
    Frames,
    Motion,
)
from talkingface.pipeline.errors import CompatibilityError, ConfigError, ContractError
from talkingface.pipeline.graph import StageGraph
from talkingface.pipeline.registry import PluginManager
from talkingface.pipeline.stages import MotionGenerator
from talkingface.plugins.render.liveportrait import SMALL_CONFIG, LivePortraitModels
from talkingface.plugins.render.liveportrait.mapping import source_latent
from talkingface.plugins.render.liveportrait.renderer import (
    LivePortraitConfig,
    LivePortraitRenderer,
    paste_mask,
)
from talkingface.plugins.render.meshwarp import MeshWarpRenderer
from talkingface.testing import RendererConformance, neutral_motion, synthetic_speech
from tests.pipeline.toy_stages import RmsEncoder


@pytest.fixture(autouse=True, scope="module")
def _one_thread():
    """One torch thread: on a CPU busy with other jobs far faster for these small networks."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@cache
def weights_dir() -> Path:
    """Small random networks (seed 0) saved as .pth in the published layout, once per run."""
    folder = Path(tempfile.mkdtemp(prefix="lp_small_weights_"))
    return LivePortraitModels.from_config(SMALL_CONFIG, seed=0).save(folder)


def make_stage(**params) -> LivePortraitRenderer:
    config = LivePortraitConfig(weights=str(weights_dir()), networks="small", batch_frames=3,
                                backend="torch", **params)  # fmt: skip
    stage = LivePortraitRenderer(config)
    stage.ensure_loaded()
    return stage


@cache
def _stage() -> LivePortraitRenderer:
    return make_stage()


@cache
def _unstitched() -> LivePortraitRenderer:
    return make_stage(stitching=False)


@cache
def _portrait():
    from talkingface.assets import demo_portrait

    return demo_portrait()


@cache
def _prepared(stage: LivePortraitRenderer):
    return stage.prepare(_portrait())


class TestLivePortraitConformance(RendererConformance):
    num_frames = 5

    def make_stage(self):
        return _stage()

    def make_portrait(self):
        return _portrait()


def test_registered_as_liveportrait():
    entry = PluginManager(load_entry_points=False).registry.get("render", "liveportrait")
    assert issubclass(entry.cls, LivePortraitRenderer)
    assert LIVEPORTRAIT_SPACE in entry.cls.spaces and entry.cls.semantic


def test_prepare_crops_on_upstreams_convention_and_encodes_once():
    prepared = _prepared(_stage())
    assert prepared.renderer == "liveportrait" and prepared.size == (512, 512)
    assert prepared.crop.image.shape == (512, 512, 3)
    volume = prepared.state["feature_3d"]
    assert tuple(volume.shape[1:]) == SMALL_CONFIG.volume_shape and volume.shape[0] == 1
    assert prepared.state["kp_source"].shape == (1, 21, 3)


def test_neutral_motion_drives_the_portraits_own_keypoints():
    stage = _unstitched()
    prepared = _prepared(stage)
    kp = stage.driving_keypoints(prepared, neutral_motion(2))
    torch.testing.assert_close(kp, prepared.state["kp_source"].expand(2, -1, -1), atol=1e-6,
                               rtol=0)  # fmt: skip


def mouth_box(prepared) -> tuple[slice, slice]:
    """Rows and columns of the rendered crop around the mouth (its landmarks, with margin)."""
    from talkingface.face.landmarks import LIPS_OUTER

    lips = prepared.crop.landmarks.points[list(LIPS_OUTER), :2]
    (x0, y0), (x1, y1) = lips.min(0).values.tolist(), lips.max(0).values.tolist()
    return slice(int(y0) - 20, int(y1) + 30), slice(int(x0) - 10, int(x1) + 10)


def test_jaw_opens_the_mouth_keypoints_and_a_press_closes_them():
    stage = _unstitched()
    prepared = _prepared(stage)
    m, state = stage.models, prepared.state
    kp_source, rest = state["kp_source"], state["source"].lip_ratio.item()

    def lip_delta(target: float) -> torch.Tensor:
        """The lip network's keypoint change for a target lip ratio, from the portrait's."""
        ratios = torch.tensor([[rest, target]])
        return (m.retarget_lip(kp_source, ratios) - m.retarget_lip(kp_source, torch.tensor(
            [[rest, rest]])))[0]  # fmt: skip

    def driven(**values) -> torch.Tensor:
        return stage.driving_keypoints(prepared, neutral_motion(1, **values))[0] - kp_source[0]

    opened = driven(jaw_open=0.5)
    assert opened.abs().max() > 1e-4
    torch.testing.assert_close(opened, lip_delta(rest + 0.5 * 0.6), atol=1e-6, rtol=0)
    wider = driven(jaw_open=1.0)
    torch.testing.assert_close(wider, lip_delta(rest + 0.6), atol=1e-6, rtol=0)
    # p/b/m: a press drives the lip network to a closed mouth (ratio 0), jaw or no jaw.
    torch.testing.assert_close(driven(lip_press=1.0), lip_delta(0.0), atol=1e-6, rtol=0)
    torch.testing.assert_close(driven(jaw_open=0.4, lip_press=1.0), lip_delta(0.0), atol=1e-6,
                               rtol=0)  # fmt: skip
    # ... and the rendered mouth region follows: it changes when the jaw opens (random
    # networks move pixels only a little; real ones open the mouth).
    frames = stage.render(prepared, _two_frames(jaw_open=1.0)).data.float()
    rows, cols = mouth_box(prepared)
    assert (frames[1, rows, cols] - frames[0, rows, cols]).abs().max() >= 2


def _two_frames(**values) -> Motion:
    """Frame 0 neutral, frame 1 with ``values``."""
    first, second = neutral_motion(1), neutral_motion(1, **values)
    return Motion(
        torch.cat([first.pose, second.pose]),
        torch.cat([first.expression, second.expression]),
        first.names,
        first.fps,
    )


def test_the_portraits_own_latent_renders_as_neutral_motion():
    stage = _stage()
    prepared = _prepared(stage)
    latent = source_latent(prepared.state["source"], frames=2)
    pose = torch.zeros(2, 6)
    pose[:, 5] = 1
    motion = Motion(pose, torch.zeros(2, 0), (), 25.0, latent=latent, space=LIVEPORTRAIT_SPACE)
    from_latent = stage.render(prepared, motion).data.float()
    semantic = stage.render(prepared, neutral_motion(2)).data.float()
    assert (from_latent - semantic).abs().max() <= 1.0
    # A latent that turns the head renders something else.
    turned = latent.clone()
    turned[:, 64] += 15.0  # yaw, degrees
    motion = Motion(pose, torch.zeros(2, 0), (), 25.0, latent=turned, space=LIVEPORTRAIT_SPACE)
    assert (stage.render(prepared, motion).data.float() - semantic).abs().mean() > 0.5


class ToyLatentGenerator(MotionGenerator):
    """Motion in LivePortrait's keypoint space: a head nodding with the loudness."""

    name = "toylp"
    accepts = ("rms",)
    space = LIVEPORTRAIT_SPACE

    def generate(self, features, controls):
        t = features.num_frames
        latent = torch.zeros(t, 70)
        latent[:, 63] = 20.0 * features.values[:, 0].clamp(0, 1)  # pitch
        latent[:, 66:69] = torch.tensor([0.0, 0.0, 0.0])
        latent[:, 69] = 1.0
        pose = torch.zeros(t, 6)
        pose[:, 5] = 1.0
        return Motion(pose, torch.zeros(t, 0), (), features.fps, latent=latent,
                      space=LIVEPORTRAIT_SPACE, start_frame=features.start_frame)  # fmt: skip


def test_a_latent_generator_drives_liveportrait_and_is_refused_by_meshwarp(pm):
    speech = synthetic_speech(0.2)
    graph = StageGraph(RmsEncoder(), ToyLatentGenerator(), _stage(), fps=25, chunk_frames=4,
                       plugin_manager=pm)  # fmt: skip
    frames = graph.run(_portrait(), speech).frames
    assert isinstance(frames, Frames) and frames.num_frames == 5
    streamed = Frames.concat(list(graph.stream(_portrait(), speech.chunks(1280))))
    assert (streamed.data.float() - frames.data.float()).abs().max() <= 1.0
    with pytest.raises(CompatibilityError) as err:
        StageGraph(RmsEncoder(), ToyLatentGenerator(), MeshWarpRenderer(), plugin_manager=pm)
    assert "toylp" in str(err.value) and "meshwarp" in str(err.value)
    assert LIVEPORTRAIT_SPACE in str(err.value)


def test_paste_back_puts_the_face_into_the_whole_portrait():
    stage = make_stage(paste_back=True)
    portrait = _portrait()
    prepared = stage.prepare(portrait)
    assert prepared.size == portrait.size == stage.output_size
    frames = stage.render(prepared, neutral_motion(2, jaw_open=0.5)).data
    assert frames.shape == (2, *portrait.size, 3)
    paste = prepared.state["paste"]
    y0, y1, x0, x1 = paste.box
    outside = torch.ones(portrait.size, dtype=torch.bool)
    outside[y0:y1, x0:x1] = False
    assert torch.equal(frames[0][outside], portrait.pixels[outside])
    assert not torch.equal(frames[0, y0:y1, x0:x1], portrait.pixels[y0:y1, x0:x1])
    with pytest.raises(ContractError, match="prepare it with this renderer"):
        _stage().render(prepared, neutral_motion(1))


def test_paste_mask_ramps_over_upstreams_border():
    mask = paste_mask(512)
    assert mask[256, 256] == 1.0 and mask[0, 256] == 0.0 and mask[256, 511] == 0.0
    assert mask[256, 8] == pytest.approx(0.5) and mask[256, 16] == 1.0
    torch.testing.assert_close(torch.from_numpy(mask), torch.from_numpy(mask).T)


def test_missing_weights_stop_with_where_to_get_them(tmp_path):
    with pytest.raises(ConfigError, match="weights folder .* not found.*KwaiVGI/LivePortrait"):
        LivePortraitRenderer(LivePortraitConfig(weights=str(tmp_path / "nowhere")))
    unset = LivePortraitRenderer()  # `talkingface plugins` builds stages with their defaults
    with pytest.raises(ConfigError, match="huggingface.co/KwaiVGI/LivePortrait.*render.params"):
        unset.ensure_loaded()
    assert unset.models is None


@pytest.mark.parametrize("bad", [{"dtype": "float64"}, {"dtype": "float16"},
                                 {"networks": "huge"}, {"batch_frames": 0}])  # fmt: skip
def test_bad_config_is_refused(bad):
    with pytest.raises(ConfigError, match=next(iter(bad))):
        LivePortraitRenderer(LivePortraitConfig(weights=str(weights_dir()), **bad))


def test_motion_without_the_jaw_is_refused():
    motion = neutral_motion(1, names=tuple(n for n in EXPRESSION_NAMES if n != "jaw_open"))
    with pytest.raises(ContractError, match="jaw_open"):
        _stage().render(_prepared(_stage()), motion)


def test_the_profile_shows_the_kernel_backend_it_ran(pm):
    from talkingface.plugins.audio.energy import EnergyEncoder
    from talkingface.plugins.motion.rules import RulesMotion

    graph = StageGraph(EnergyEncoder(), RulesMotion(), _stage(), plugin_manager=pm)
    profile = graph.run(_prepared(_stage()), synthetic_speech(0.12)).profile
    rows = {(r["kind"], r["method"]): r["backend"] for r in profile.rows()}
    assert rows[("render", "render")] == "torch"
    assert "render [torch]" in profile.table()


def _inputs(tmp_path: Path) -> tuple[Path, Path]:
    import PIL.Image
    import soundfile as sf

    image, audio = tmp_path / "portrait.png", tmp_path / "speech.wav"
    PIL.Image.fromarray(_portrait().pixels.numpy()).save(image)
    sf.write(audio, synthetic_speech(0.4).samples.numpy(), 16000)
    return image, audio


def test_run_end_to_end_with_a_weights_folder(tmp_path, capsys):
    """`talkingface run -i portrait -a speech render=liveportrait render.params.weights=DIR`:
    crop, networks, paste-back, watermark, Content Credentials and the MP4."""
    from talkingface.api import verify
    from talkingface.cli import main
    from talkingface.io import probe_media

    image, audio = _inputs(tmp_path)
    out = tmp_path / "lp.mp4"
    assert main(["run", "-i", str(image), "-a", str(audio), "-o", str(out), "render=liveportrait",
                 f"render.params.weights={weights_dir()}", "render.params.networks=small",
                 "render.params.paste_back=true", "threads=1"]) == 0  # fmt: skip
    info = probe_media(out)
    assert info["video"]["frames"] == 10 and (info["video"]["width"], info["video"]["height"]) == (
        512, 512)  # fmt: skip
    saved = OmegaConf.load(tmp_path / "lp.yaml").render
    assert saved.name == "liveportrait" and saved.params.weights == str(weights_dir())
    report = verify([out])[0]
    assert report.generated and report.tagged


def test_run_without_weights_is_one_line_saying_where_to_get_them(tmp_path, capsys):
    from talkingface.cli import main

    image, audio = _inputs(tmp_path)
    out = tmp_path / "lp.mp4"
    assert main(["run", "-i", str(image), "-a", str(audio), "-o", str(out),
                 "render=liveportrait"]) == 2  # fmt: skip
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "huggingface.co/KwaiVGI/LivePortrait" in err[0]
    assert "render.params.weights=DIR" in err[0] and not out.exists()
