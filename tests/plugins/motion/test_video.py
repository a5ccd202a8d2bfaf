"""Tests of the ``video`` motion source: conformance, the driver's motion frame for frame, what
happens past the driver's end, controls, bad drivers, and whole runs with the driver's sound."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from talkingface.api import Pipeline
from talkingface.face.motion_fit import FIT_NAMES
from talkingface.face.motion_track import extract_motion
from talkingface.io import VideoWriter
from talkingface.pipeline.contracts import AudioFeatures, Controls
from talkingface.pipeline.errors import ConfigError, InputError
from talkingface.plugins.motion.video import VideoMotion
from talkingface.testing import FPS, MotionGeneratorConformance


def _features(frames: int, start: int = 0, fps: float = FPS) -> AudioFeatures:
    return AudioFeatures(torch.zeros(frames, 2), fps, "anything", start_frame=start)


@pytest.fixture(scope="module")
def driver_track(rendered_talk):
    """The driver clip's track, extracted once for the module (as ``load`` does)."""
    return extract_motion(rendered_talk[3], rest="neutral")


def _stage(driver_track, path, **params) -> VideoMotion:
    """A ``video`` stage on the driver whose extraction is already done (as ``load`` would)."""
    stage = VideoMotion({"path": str(path), **params})
    stage.track = driver_track
    stage.loaded = True
    return stage


class TestVideoConformance(MotionGeneratorConformance):
    @pytest.fixture(autouse=True)
    def _driver(self, rendered_talk, driver_track):
        self.path, self.track = rendered_talk[3], driver_track

    def make_stage(self):
        return _stage(self.track, self.path)

    def make_features(self, stage):
        return _features(100)  # longer than the 75-frame driver: the end is held


def test_registered_and_declared():
    from talkingface.pipeline.registry import get_plugin_manager

    assert get_plugin_manager().registry.get("motion", "video").cls is VideoMotion
    assert VideoMotion.provides == FIT_NAMES and VideoMotion.accepts == ("*",)


def test_motion_is_the_drivers_frame_for_frame(rendered_talk, driver_track):
    stage = _stage(driver_track, rendered_talk[3])
    motion = stage.generate(_features(75), Controls())
    driver = driver_track.relative_to_first(expression=False)
    torch.testing.assert_close(motion.pose, driver.pose)
    torch.testing.assert_close(motion.expression, driver_track.motion.expression)
    # The pose is relative to the driver's first face frame: the portrait starts at its own.
    assert torch.equal(motion.pose[0], torch.tensor([0, 0, 0, 0, 0, 1.0]))
    # At another frame rate the driver's time is sampled (every other frame at 12.5 fps).
    half = stage.generate(_features(10, fps=12.5), Controls())
    torch.testing.assert_close(half.expression, driver_track.motion.expression[0:20:2])
    # rest=first: the expression is relative to that frame too.
    first = _stage(driver_track, rendered_talk[3], rest="first").generate(_features(75),
                                                                          Controls())
    assert torch.equal(first.expression[0], torch.zeros(len(FIT_NAMES)))
    torch.testing.assert_close(first.expression,
                               driver_track.motion.expression - driver_track.motion.expression[0])


@pytest.mark.parametrize("end", ["hold", "loop", "mirror"])
def test_audio_longer_than_the_driver(rendered_talk, driver_track, end):
    expr = driver_track.motion.expression  # 75 frames
    motion = _stage(driver_track, rendered_talk[3], end=end).generate(_features(10, 80),
                                                                      Controls())
    expected = {"hold": expr[[74] * 10], "loop": expr[5:15],
                "mirror": expr[[68, 67, 66, 65, 64, 63, 62, 61, 60, 59]]}[end]
    torch.testing.assert_close(motion.expression, expected)
    assert motion.start_frame == 80


def test_controls_scale_the_head_not_the_face(rendered_talk, driver_track):
    stage = _stage(driver_track, rendered_talk[3])
    still = stage.generate(_features(75), Controls(still_head=True, head_distance=1.2))
    torch.testing.assert_close(still.pose, torch.tensor([[0, 0, 0, 0, 0, 1.2]]).expand(75, 6))
    driver = driver_track.relative_to_first(expression=False)
    torch.testing.assert_close(still.expression, driver.expression)
    double = stage.generate(_features(75), Controls(head_motion=2.0))
    torch.testing.assert_close(double.pose[:, :3], 2 * driver.pose[:, :3])


def test_bad_configuration_and_drivers(tmp_path):
    with pytest.raises(ConfigError, match="end"):
        VideoMotion({"end": "bounce"})
    with pytest.raises(ConfigError, match="rest"):
        VideoMotion({"rest": "middle"})
    with pytest.raises(ConfigError, match="smoothing"):
        VideoMotion({"smoothing": "wobbly"})
    with pytest.raises(InputError, match="motion.params.path"):
        VideoMotion().load()
    with pytest.raises(InputError, match="missing.mp4"):
        VideoMotion({"path": str(tmp_path / "missing.mp4")}).load()
    faceless = tmp_path / "wall.mp4"
    with VideoWriter(faceless, 25.0, (96, 96)) as writer:
        writer.write(torch.full((5, 96, 96, 3), 128, dtype=torch.uint8))
    with pytest.raises(InputError, match="no face found in the driver"):
        VideoMotion({"path": str(faceless)}).load()
    with pytest.raises(InputError, match="no sound track"):
        VideoMotion({"path": str(faceless)}).default_audio()


def _video_pipeline(path, *more: str) -> Pipeline:
    return Pipeline.from_config("default", [
        "motion=video", f"motion.params.path={path}", "render.params.size=128",
        "render.params.flow_grid=32", "threads=1", *more])


def test_a_run_with_the_drivers_own_sound(rendered_talk, portrait):
    driving, _, audio, path = rendered_talk
    pipe = _video_pipeline(path)
    assert str(pipe.default_audio()) == str(path)
    result = pipe.run(portrait)  # no audio: the driver's sound track
    frames = result.frames
    assert frames.num_frames == 75 and frames.size == (128, 128)
    # The portrait moves as the driver did: its jaw follows the motion that made the driver.
    jaw = result.motion.get("jaw_open").double().numpy()
    assert np.corrcoef(jaw, driving.get("jaw_open").double().numpy())[0, 1] > 0.95
    # Streaming gives the same frames (meshwarp's own rounding, which depends on how frames
    # are batched, allows one grey level: see its streaming test).
    streamed = torch.cat([f.data for f in pipe.stream(portrait)])
    assert streamed.shape == frames.data.shape
    assert (streamed.float() - frames.data.float()).abs().max() <= 1


def test_a_driver_without_sound_needs_audio(tmp_path, rendered_talk, portrait, speech):
    _, frames, _, _ = rendered_talk
    silent_driver = tmp_path / "silent.mp4"
    with VideoWriter(silent_driver, 25.0, (256, 256)) as writer:
        writer.write(frames.slice(0, 30))
    pipe = _video_pipeline(silent_driver)
    with pytest.raises(InputError, match="no sound track: give the speech with --audio"):
        pipe.run(portrait)
    result = pipe.run(portrait, speech)  # 2 s of audio over a 1.2 s driver: its end is held
    assert result.frames.num_frames == 50
    torch.testing.assert_close(result.motion.expression[40], result.motion.expression[29])


def test_audio_driven_motion_still_needs_audio(portrait):
    pipe = Pipeline.from_config("default", ["render.params.size=128"])
    assert pipe.default_audio() is None
    with pytest.raises(InputError, match="give the speech audio"):
        pipe.run(portrait)
