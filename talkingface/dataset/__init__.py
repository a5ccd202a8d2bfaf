"""Training datasets from real talking videos (``talkingface dataset build``): per clip the
motion track, audio features, sound track and portrait frames, in a versioned format
(:mod:`talkingface.dataset.format`), built by a process pool or on a Ray cluster, read back
frame-aligned by :class:`Dataset`.

    from talkingface.dataset import Dataset, build_dataset

The names load on first use, so ``talkingface --help`` does not import torch.
"""

from __future__ import annotations

import importlib

_EXPORTS = {
    "BuildReport": "build",
    "BuildSettings": "clip",
    "build_dataset": "build",
    "find_videos": "build",
    "FORMAT": "format",
    "VERSION": "format",
    "Dataset": "reader",
    "DatasetClip": "reader",
}
__all__ = sorted(_EXPORTS)


def __getattr__(name: str):
    if name not in _EXPORTS:
        raise AttributeError(f"module 'talkingface.dataset' has no attribute {name!r}")
    return getattr(importlib.import_module(f"talkingface.dataset.{_EXPORTS[name]}"), name)
