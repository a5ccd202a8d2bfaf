"""Hotspot kernels of the renderers: each op has a torch reference (the spec and CPU path) and a
Triton kernel, chosen per call by `backend="auto"|"torch"|"triton"` or the process default.

Triton is optional: without it every op runs its torch reference.
"""

from talkingface.kernels.dispatch import (
    BACKENDS,
    KernelBackendError,
    get_default_backend,
    interpreter_enabled,
    last_backend,
    last_backends,
    resolve_backend,
    set_default_backend,
    triton_available,
)
from talkingface.kernels.image_warp import warp2d, warp2d_reference
from talkingface.kernels.spade import spade_modulate, spade_modulate_reference
from talkingface.kernels.volume_warp import Warp3dFunction, warp3d, warp3d_reference

__all__ = [
    "BACKENDS",
    "KernelBackendError",
    "Warp3dFunction",
    "get_default_backend",
    "interpreter_enabled",
    "last_backend",
    "last_backends",
    "resolve_backend",
    "set_default_backend",
    "spade_modulate",
    "spade_modulate_reference",
    "triton_available",
    "warp2d",
    "warp2d_reference",
    "warp3d",
    "warp3d_reference",
]
