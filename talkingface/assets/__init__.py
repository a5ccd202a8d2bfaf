"""The built-in demo inputs: a synthetic portrait (made by ``scripts/make_demo_assets.py``) and a
speech clip, shipped inside the package so ``talkingface run`` works with no arguments."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from talkingface.pipeline.contracts import Portrait
from talkingface.pipeline.errors import InputError

_ASSETS = Path(__file__).resolve().parent


def demo_portrait_path() -> Path:
    """Path of the built-in synthetic demo portrait (``talkingface/assets/demo_portrait.png``)."""
    path = _ASSETS / "demo_portrait.png"
    if not path.is_file():
        raise InputError(
            f"the demo portrait is missing ({path}): reinstall talkingface, or give a portrait"
        )
    return path


def demo_portrait() -> Portrait:
    """The built-in synthetic demo portrait: uint8 ``[512, 512, 3]``, one frontal face."""
    from PIL import Image

    with Image.open(demo_portrait_path()) as img:
        pixels = np.asarray(img.convert("RGB")).copy()
    return Portrait(torch.from_numpy(pixels), source="demo portrait")


def demo_audio_path() -> Path:
    """Path of the built-in demo speech clip (``talkingface/assets/demo_speech.flac``)."""
    path = _ASSETS / "demo_speech.flac"
    if not path.is_file():
        raise InputError(
            f"the demo speech clip is missing ({path}): reinstall talkingface, or give an "
            "audio file"
        )
    return path
