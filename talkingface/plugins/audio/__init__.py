"""Built-in audio-feature extractors: ``energy`` (loudness + spectral shape, the baseline) and
``visemes`` (viseme posteriors from a small shipped network)."""

from __future__ import annotations

from talkingface.pipeline.hookspecs import hookimpl
from talkingface.plugins.audio.energy import EnergyEncoder
from talkingface.plugins.audio.visemes import VisemeEncoder


@hookimpl
def register_audio_encoders(register):
    register(EnergyEncoder)
    register(VisemeEncoder)
