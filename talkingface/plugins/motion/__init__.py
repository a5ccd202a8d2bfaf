"""Built-in motion generators: ``rules`` (hand-written rules over energy or viseme features) and
``video`` (the motion of a driver video)."""

from __future__ import annotations

from talkingface.pipeline.hookspecs import hookimpl
from talkingface.plugins.motion.rules import RulesMotion
from talkingface.plugins.motion.video import VideoMotion


@hookimpl
def register_motion_generators(register):
    register(RulesMotion)
    register(VideoMotion)
