"""talkingface: a modular pipeline framework for audio-driven talking faces."""

from talkingface._version import __version__
from talkingface.pipeline.hookspecs import hookimpl

__all__ = ["Pipeline", "hookimpl", "__version__"]


def __getattr__(name: str):
    # The API pulls in torch and the media stack; keep `import talkingface` light for plugins.
    if name == "Pipeline":
        from talkingface.api import Pipeline

        return Pipeline
    raise AttributeError(f"module 'talkingface' has no attribute {name!r}")
