"""Built-in motion generators."""

from __future__ import annotations

from talkingface.pipeline.hookspecs import hookimpl


@hookimpl
def register_motion_generators(register):
    pass
