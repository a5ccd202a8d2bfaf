"""Built-in motion generators: ``rules`` (hand-written rules over energy or viseme features)."""

from __future__ import annotations

from talkingface.pipeline.hookspecs import hookimpl
from talkingface.plugins.motion.rules import RulesMotion


@hookimpl
def register_motion_generators(register):
    register(RulesMotion)
