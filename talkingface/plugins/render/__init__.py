"""Built-in renderers: ``meshwarp``, the face-mesh warp (the default; face analysis comes from
``talkingface.face``), and ``liveportrait``, LivePortrait's networks on the user's weights."""

from __future__ import annotations

from talkingface.pipeline.hookspecs import hookimpl
from talkingface.plugins.render.liveportrait.renderer import LivePortraitRenderer
from talkingface.plugins.render.meshwarp import MeshWarpRenderer


@hookimpl
def register_renderers(register):
    register(MeshWarpRenderer)
    register(LivePortraitRenderer)
