"""Fixtures for the framework-core tests: a random portrait and controls."""

from __future__ import annotations

import pytest
import torch

from talkingface.pipeline.contracts import Controls, Portrait


@pytest.fixture
def portrait():
    g = torch.Generator().manual_seed(0)
    return Portrait(torch.randint(0, 256, (40, 30, 3), generator=g, dtype=torch.uint8))


@pytest.fixture
def controls():
    return Controls(seed=3)
