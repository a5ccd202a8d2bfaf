"""Shared fixtures: the demo portrait and one cached face analyzer (face and render tests)."""

from __future__ import annotations

import pytest

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
