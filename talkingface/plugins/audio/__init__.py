"""Built-in audio-feature extractors: ``energy`` (loudness + spectral shape, the baseline),
``visemes`` (viseme posteriors from a small shipped network) and ``sphinx`` (phones recognised
and force-aligned by PocketSphinx, an optional dependency)."""

from __future__ import annotations

from talkingface.pipeline.hookspecs import hookimpl
from talkingface.plugins.audio.energy import EnergyEncoder
from talkingface.plugins.audio.sphinx import SphinxEncoder
from talkingface.plugins.audio.visemes import VisemeEncoder


@hookimpl
def register_audio_encoders(register):
    register(EnergyEncoder)
    register(VisemeEncoder)
    register(SphinxEncoder)
