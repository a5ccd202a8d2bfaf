"""Shared fixtures: the demo portrait and one cached face analyzer (face and render tests)."""

from __future__ import annotations

import pytest
import torch

from talkingface import assets
from talkingface.assets import demo_portrait
from talkingface.face import FaceAnalyzer, FaceLandmarks
from talkingface.pipeline.registry import PluginManager
from tests.pipeline.toy_stages import TestStagesPlugin


@pytest.fixture(scope="session")
def portrait():
    """The built-in demo portrait (uint8 ``[512, 512, 3]``)."""
    return demo_portrait()


@pytest.fixture(scope="session")
def face_analyzer():
    """A static-image FaceAnalyzer whose MediaPipe graphs are built once per test session."""
    analyzer = FaceAnalyzer()
    yield analyzer
    analyzer.close()


@pytest.fixture(scope="session")
def portrait_landmarks(portrait, face_analyzer) -> FaceLandmarks:
    """The demo portrait's face landmarks."""
    return face_analyzer.analyze(portrait)


@pytest.fixture
def pm(monkeypatch):
    """A plugin manager with the built-ins plus the test stages (no entry points)."""
    manager = PluginManager(load_entry_points=False)
    manager.register(TestStagesPlugin(), name="test-stages")
    return manager


@pytest.fixture
def speech():
    from talkingface.testing import synthetic_speech

    return synthetic_speech(2.0)


@pytest.fixture(autouse=True, scope="session")
def _talkingface_home(tmp_path_factory):
    """Keep what talkingface stores per user (the local Content Credentials key) out of the
    real home folder during tests."""
    import os

    home = tmp_path_factory.mktemp("talkingface_home")
    before = os.environ.get("TALKINGFACE_HOME")
    os.environ["TALKINGFACE_HOME"] = str(home)
    yield home
    if before is None:
        os.environ.pop("TALKINGFACE_HOME", None)
    else:
        os.environ["TALKINGFACE_HOME"] = before


@pytest.fixture(scope="session")
def rendered_talk(tmp_path_factory):
    """A short clip of the demo portrait rendered by ``rules`` + ``meshwarp`` at 256 px, 25 fps,
    whose first frame is the portrait at rest: ``(motion, frames, audio, mp4 path)`` where the
    MP4 carries the frames and the speech (a driver video for the ``video`` motion source)."""
    from talkingface.io import VideoWriter, load_audio
    from talkingface.pipeline.contracts import Controls, Motion
    from talkingface.plugins.audio.energy import EnergyEncoder
    from talkingface.plugins.motion.rules import RulesMotion
    from talkingface.plugins.render.meshwarp import MeshWarpRenderer

    encoder = EnergyEncoder()
    audio = load_audio(assets.demo_audio_path(), target_rate=encoder.sample_rate)
    audio = audio.slice(0, 3 * audio.sample_rate)  # 75 frames, the first of them at rest
    talk = RulesMotion().generate(
        encoder.encode(audio.slice(0, audio.num_samples - audio.sample_rate // 25), 25.0),
        Controls(seed=3))
    rest_pose = torch.tensor([[0.0, 0.0, 0.0, 0.0, 0.0, 1.0]])
    motion = Motion(torch.cat([rest_pose, talk.pose]),
                    torch.cat([torch.zeros(1, len(talk.names)), talk.expression]),
                    talk.names, 25.0)
    renderer = MeshWarpRenderer({"size": 256, "flow_grid": 64})
    frames = renderer.render(renderer.prepare(assets.demo_portrait()), motion)
    path = tmp_path_factory.mktemp("driver") / "driver.mp4"
    with VideoWriter(path, 25.0, (256, 256), audio=audio, crf=12) as writer:
        writer.write(frames)
    return motion, frames, audio, path
