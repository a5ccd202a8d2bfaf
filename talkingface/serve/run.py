"""Running the live server: in the foreground until Ctrl-C (:func:`serve`), or in a thread of
its own (:class:`BackgroundServer`)."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable

from aiohttp import web

from talkingface.api import Pipeline
from talkingface.serve.app import LiveServer, ServeOptions


def page_url(host: str, port: int, token: str | None = None) -> str:
    shown = f"[{host}]" if ":" in host else host
    return f"http://{shown}:{port}/" + (f"?token={token}" if token else "")


async def _start(server: LiveServer) -> tuple[web.AppRunner, int]:
    runner = web.AppRunner(server.app(), handle_signals=False, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, server.options.host, server.options.port)
    await site.start()
    port = runner.addresses[0][1]
    return runner, port


def _use_pipeline_threads(pipe: Pipeline) -> int:
    """Set torch's thread count to the pipeline's ``threads`` (if set) for as long as the
    server runs, so streams running side by side do not switch torch's thread pool back and
    forth around every chunk (``Pipeline`` applies and restores it per chunk, 2-3 ms each time);
    returns the count before."""
    import torch

    before = torch.get_num_threads()
    if pipe.config.threads:
        torch.set_num_threads(pipe.config.threads)
    return before


def serve(pipe: Pipeline, options: ServeOptions | None = None, *,
          announce: Callable[[str], None] = print) -> None:
    """Serve the live page until interrupted. ``announce`` gets the page's address once the
    server listens (the demo portrait is analysed and the pipeline warmed up first)."""
    server = LiveServer(pipe, options)
    _use_pipeline_threads(pipe)
    announce(f"warming up {pipe.description} ...")
    server.warm_up()

    async def main() -> None:
        runner, port = await _start(server)
        announce(f"talkingface live page: {page_url(server.options.host, port, None)}"
                 + (" (add ?token=<your token>)" if server.options.token else ""))
        try:
            await asyncio.Event().wait()
        finally:
            await runner.cleanup()

    asyncio.run(main())


class BackgroundServer:
    """The live server on its own event loop in a daemon thread::

        with BackgroundServer(pipe) as server:
            print(server.url)
    """

    def __init__(self, pipe: Pipeline, options: ServeOptions | None = None, *,
                 warm_up: bool = True) -> None:
        self.server = LiveServer(pipe, options)
        if warm_up:
            self.server.warm_up()
        self.loop = asyncio.new_event_loop()
        self._ready = threading.Event()
        self._runner: web.AppRunner | None = None
        self._error: BaseException | None = None
        self.port = 0
        self._threads_before: int | None = None
        self.thread = threading.Thread(target=self._run, name="talkingface-serve", daemon=True)

    @property
    def url(self) -> str:
        """The page's address, with the token when there is one."""
        return page_url(self.server.options.host, self.port, self.server.options.token)

    def _run(self) -> None:
        asyncio.set_event_loop(self.loop)
        try:
            self._runner, self.port = self.loop.run_until_complete(_start(self.server))
        except BaseException as exc:  # noqa: BLE001 - handed to the thread that started it
            self._error = exc
            self._ready.set()
            return
        self._ready.set()
        self.loop.run_forever()
        self.loop.run_until_complete(self._runner.cleanup())
        self.loop.close()

    def start(self) -> BackgroundServer:
        """Listen; until :meth:`stop`, torch runs on the pipeline's ``threads`` process-wide."""
        self._threads_before = _use_pipeline_threads(self.server.pipe)
        self.thread.start()
        self._ready.wait()
        if self._error is not None:
            self._restore_threads()
            raise self._error
        return self

    def stop(self) -> None:
        if self.thread.is_alive():
            self.loop.call_soon_threadsafe(self.loop.stop)
            self.thread.join(timeout=10)
        self._restore_threads()

    def _restore_threads(self) -> None:
        import torch

        if self._threads_before is not None:
            torch.set_num_threads(self._threads_before)
            self._threads_before = None

    def __enter__(self) -> BackgroundServer:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()
