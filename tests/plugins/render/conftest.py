"""Shared fixtures for the render tests: the demo portrait and one cached face analyzer."""

from __future__ import annotations

import pytest

from talkingface.plugins.render.face import FaceAnalyzer, FaceLandmarks, demo_portrait


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
