"""Built-in implementation of the ``call_stage`` hook: performs the stage call itself."""

from __future__ import annotations

from talkingface.pipeline.hookspecs import hookimpl


@hookimpl(trylast=True)
def call_stage(stage, method, args, kwargs):
    if method.startswith("stream."):
        processor = kwargs.pop("processor")
        return getattr(processor, method.split(".", 1)[1])(*args, **kwargs)
    return getattr(stage, method)(*args, **kwargs)
