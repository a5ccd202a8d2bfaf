"""``talkingface serve``: the live page. A microphone (or a clip) in the browser drives the
talking face over a WebSocket; the page shows the frames, its latency and frame rate, and marks
the video as AI-generated. :func:`serve` runs it; :class:`BackgroundServer` runs it in a thread
(tests, benchmarks, notebooks)."""

from talkingface.serve.app import LiveServer, ServeOptions
from talkingface.serve.run import BackgroundServer, serve

__all__ = ["BackgroundServer", "LiveServer", "ServeOptions", "serve"]
