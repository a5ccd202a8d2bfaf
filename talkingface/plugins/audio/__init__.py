"""Built-in audio-feature extractors."""

from __future__ import annotations

from talkingface.pipeline.hookspecs import hookimpl


@hookimpl
def register_audio_encoders(register):
    pass
