"""The browser front end: an aiohttp server on localhost that streams a ``PlaySession``'s panes to a page.

``GET /`` is the page (``page.html``); ``GET /ws`` is a websocket. The page sends ``{"key": "left", "id": n}``
(keys: left right up r m s); after each the server sends every connected page a text message (the readouts, with
the ``id`` it answers) and then the panes as bytes: ``uint16 width, uint16 height`` (little-endian), then RGB
rows. The page draws them, measures key press -> frame drawn itself, and with ``?script=N`` presses left N times
and sends back a report (``{"type": "report", ...}``): how headless Chromium tests the page and the bench
measures it.

The session lives in one worker thread from its creation on (the server takes a function that makes it): the
real source renders through an OpenGL context that belongs to the thread that made it, and stepped from another
thread it returns stale frames. The event loop keeps answering while the dream steps.
"""

from __future__ import annotations

import asyncio
import json
import struct
import threading
from concurrent.futures import ThreadPoolExecutor
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
from aiohttp import WSMsgType, web

from envs.play.session import HELP, KEY_ACTIONS, PlaySession

PAGE = Path(__file__).with_name("page.html")
HOST = "127.0.0.1"      # localhost only: the page drives this process; reach it remotely through an ssh tunnel


def encode_frame(view: np.ndarray) -> bytes:
    """``(H, W, 3)`` uint8 -> the bytes the page draws."""
    h, w = view.shape[:2]
    return struct.pack("<HH", w, h) + np.ascontiguousarray(view, np.uint8).tobytes()


def decode_frame(data: bytes) -> np.ndarray:
    """The inverse of ``encode_frame`` (for clients written in Python, such as the tests)."""
    w, h = struct.unpack("<HH", data[:4])
    return np.frombuffer(data[4:], np.uint8).reshape(h, w, 3)


class WebPlay:
    """Serve the session that ``make_session()`` builds (in the worker thread) on ``http://127.0.0.1:port/``
    (``port=0``: a free one); ``save_dir``: where s saves."""

    def __init__(self, make_session: Callable[[], PlaySession], port: int = 8765, save_dir: str | Path = "play-saves"):
        self.port, self.save_dir = port, Path(save_dir)
        self.pool = ThreadPoolExecutor(1, thread_name_prefix="play-session")
        self.session: PlaySession = self.pool.submit(make_session).result()
        self.clients: set[web.WebSocketResponse] = set()
        self.reports: list[dict[str, Any]] = []     # what pages in script mode sent back
        self.report_ready = threading.Event()
        self.message = ""
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        return f"http://{HOST}:{self.port}/"

    def app(self) -> web.Application:
        app = web.Application()
        app.router.add_get("/", self._page)
        app.router.add_get("/ws", self._websocket)
        return app

    async def _page(self, request: web.Request) -> web.Response:
        return web.Response(text=PAGE.read_text(), content_type="text/html")

    def _apply(self, key: str | None) -> None:
        """A key's effect on the session (in the worker thread)."""
        s = self.session
        if key in KEY_ACTIONS:
            s.step(KEY_ACTIONS[key])
        elif key == "r":
            s.reset()
        elif key == "m":
            self.message = f"memory: {s.next_memory()} (same start)"
        elif key == "s":
            out = s.save(self.save_dir / f"save-{s.saves + 1}")
            self.message = f"saved {out['gif']} and {out['dataset']}"

    def _state(self, answers: int | None) -> tuple[str, bytes]:
        text = json.dumps({"type": "state", "id": answers, "status": self.session.status_line(),
                           "message": self.message, **self.session.readouts()})
        return text, encode_frame(self.session.view())

    async def _send(self, targets, text: str, frame: bytes) -> None:
        for ws in list(targets):
            try:
                await ws.send_str(text)
                await ws.send_bytes(frame)
            except ConnectionError:
                self.clients.discard(ws)

    async def _websocket(self, request: web.Request) -> web.WebSocketResponse:
        ws = web.WebSocketResponse(heartbeat=30)
        await ws.prepare(request)
        loop = asyncio.get_running_loop()
        self.clients.add(ws)
        await self._send([ws], *await loop.run_in_executor(self.pool, self._state, None))
        async for msg in ws:
            if msg.type != WSMsgType.TEXT:
                continue
            data = json.loads(msg.data)
            if data.get("type") == "report":
                self.reports.append(data)
                self.report_ready.set()
                continue
            key = data.get("key")
            if key not in (*KEY_ACTIONS, "r", "m", "s"):
                continue
            try:
                await loop.run_in_executor(self.pool, self._apply, key)
            except ValueError as exc:      # e.g. save before any step
                self.message = str(exc)
            await self._send(self.clients, *await loop.run_in_executor(self.pool, self._state, data.get("id")))
        self.clients.discard(ws)
        return ws

    async def _start(self) -> web.AppRunner:
        runner = web.AppRunner(self.app())
        await runner.setup()
        site = web.TCPSite(runner, HOST, self.port)
        await site.start()
        self.port = runner.addresses[0][1]
        return runner

    def serve_forever(self) -> None:
        """Serve until interrupted (Ctrl-C)."""
        async def main() -> None:
            runner = await self._start()
            print(f"memworld play: open {self.url}  ({HELP}; Ctrl-C stops)", flush=True)
            try:
                await asyncio.Event().wait()
            finally:
                await runner.cleanup()

        try:
            asyncio.run(main())
        except KeyboardInterrupt:
            pass
        finally:
            self.close()

    def start(self) -> str:
        """Serve from a background thread; return the page's URL once it listens."""
        ready = threading.Event()

        def run() -> None:
            self._loop = asyncio.new_event_loop()
            self._runner = self._loop.run_until_complete(self._start())
            ready.set()
            self._loop.run_forever()
            self._loop.run_until_complete(self._runner.cleanup())
            self._loop.close()

        self._thread = threading.Thread(target=run, name="play-web", daemon=True)
        self._thread.start()
        if not ready.wait(30):
            raise RuntimeError("the play server did not start within 30 s")
        return self.url

    def stop(self) -> None:
        if self._loop is not None and self._thread is not None:
            for ws in list(self.clients):
                asyncio.run_coroutine_threadsafe(ws.close(), self._loop).result(5)
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(10)
        self.close()

    def close(self) -> None:
        """Close the session (in its thread) and the worker."""
        self.pool.submit(self.session.close).result()
        self.pool.shutdown()
