"""LivePortrait-compatible networks (F, M, W, G and the retargeting MLPs), their checkpoint
loader and upstream's wrapper API: ``load_models(DIR)`` with DIR upstream's
``pretrained_weights/liveportrait``."""

from talkingface.plugins.render.liveportrait.checkpoints import LivePortraitWeightsError
from talkingface.plugins.render.liveportrait.model_config import (
    FULL_CONFIG,
    SMALL_CONFIG,
    LivePortraitConfig,
)
from talkingface.plugins.render.liveportrait.models import LivePortraitModels, load_models

__all__ = [
    "FULL_CONFIG",
    "SMALL_CONFIG",
    "LivePortraitConfig",
    "LivePortraitModels",
    "LivePortraitWeightsError",
    "load_models",
]
