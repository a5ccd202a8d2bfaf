"""talkingface: a modular pipeline framework for audio-driven talking faces."""

from talkingface.pipeline.hookspecs import hookimpl

__version__ = "0.1.0"
__all__ = ["Pipeline", "hookimpl", "__version__"]


def __getattr__(name: str):
    # The API pulls in torch and the media stack; keep `import talkingface` light for plugins.
    if name == "Pipeline":
        from talkingface.api import Pipeline

        return Pipeline
    raise AttributeError(f"module 'talkingface' has no attribute {name!r}")
