"""Built-in renderers and the face analysis they need."""

from __future__ import annotations

from talkingface.pipeline.hookspecs import hookimpl


@hookimpl
def register_renderers(register):
    pass
