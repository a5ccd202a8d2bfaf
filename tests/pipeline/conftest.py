"""Fixtures for the framework-core tests: a plugin manager holding the toy stages."""

from __future__ import annotations

import pytest
import torch

from talkingface.pipeline.contracts import Controls, Portrait
from talkingface.pipeline.plugins import PluginManager
from tests.pipeline.toy_stages import TestStagesPlugin


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


@pytest.fixture
def portrait():
    g = torch.Generator().manual_seed(0)
    return Portrait(torch.randint(0, 256, (40, 30, 3), generator=g, dtype=torch.uint8))


@pytest.fixture
def controls():
    return Controls(seed=3)
