"""talkingface: a modular pipeline framework for audio-driven talking faces."""

from talkingface.pipeline.hookspecs import hookimpl

__version__ = "0.1.0"
__all__ = ["hookimpl", "__version__"]
