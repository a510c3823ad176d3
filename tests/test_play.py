"""memworld play (issue 27): the session (same start side by side, readouts, memory switch, saving), the window under a
real X server after the real source's import, the page over a websocket and in headless Chromium, the bench."""

from __future__ import annotations

import asyncio
import json
import os
import select
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
import pytest
import torch

ENV = {**os.environ, "OMP_NUM_THREADS": "1", "MPLBACKEND": "Agg"}


@pytest.fixture
def session(tiny_checkpoint):
    from envs.dream.config import DreamConfig
    from envs.play import PlaySession

    s = PlaySession(DreamConfig(checkpoint=str(tiny_checkpoint)), side_by_side=True, seed=3)
    yield s
    s.close()


def test_side_by_side_starts_both_worlds_at_the_same_place(session):
    core, model = session.core, session.core.model
    real = session.real_frame
    # the dream's context is the real env's first K frames: its start frame is the real one exactly, and its pane
    # shows that frame through the autoencoder's round trip
    np.testing.assert_array_equal(core.frames[0].numpy(), real)
    np.testing.assert_array_equal(session.dream_frame, model.decode(model.encode(torch.as_tensor(real))).numpy())
    np.testing.assert_allclose(session.dream_pose, session.real_pose, atol=1e-5)
    assert session.readouts()["psnr"] > 10 and session.readouts()["step"] == 0
    for a in (0, 2, 1):
        session.step(a)
    r = session.readouts()
    assert r["step"] == 3 and r["psnr"] is not None and isinstance(r["since_visit"], int) and r["steps_per_s"] > 0
    assert session.view().shape == (96, 128, 3) and len(session.log["panes"]) == 4


def test_memory_switch_reset_and_save(session, tmp_path):
    import imageio.v3 as iio

    from envs.data.dataset import read_episodes

    session.step(2)
    before = session.cfg.memory
    session.next_memory()
    assert session.cfg.memory != before and session.steps == 0 and session.seed == 3    # same start, fresh episode
    session.step(0)
    session.reset()
    assert session.seed == 4 and session.steps == 0
    session.step(1)
    session.step(2)
    out = session.save(tmp_path / "s")
    eps = read_episodes(out["dataset"])
    assert [len(e) for e in eps] == [1, 1, 2]            # every episode played, the switched-away one included
    np.testing.assert_array_equal(eps[-1].frames, np.stack(session.log["real"]))
    np.testing.assert_array_equal(eps[-1].extra["dream_frame"], np.stack(session.log["dream"]))
    assert iio.imread(out["gif"], index=None).shape[0] == 2 + 2 + 3


def _start_xvfb():
    """Xvfb on a free display (it writes the number to -displayfd once it accepts clients): (process, ':N')."""
    r, w = os.pipe()
    proc = subprocess.Popen(["Xvfb", "-displayfd", str(w), "-screen", "0", "800x600x24", "-nolisten", "tcp"],
                            pass_fds=(w,), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    os.close(w)
    out = b""
    while not out.endswith(b"\n") and select.select([r], [], [], 30)[0]:    # until the whole line: closing the
        chunk = os.read(r, 64)                                                # pipe earlier kills Xvfb (SIGPIPE)
        if not chunk:
            break
        out += chunk
    os.close(r)
    num = out.decode().strip()
    if not num:
        proc.kill()
        pytest.fail("Xvfb did not report a display within 30 s")
    return proc, f":{num}"


@pytest.mark.skipif(shutil.which("Xvfb") is None, reason="Xvfb is not installed (Debian: apt-get install xvfb; "
                    "`make check-play` installs it)")
def test_window_opens_on_an_x_display_after_the_real_source_is_imported(tiny_checkpoint, tmp_path):
    # issue 27: importing MiniWorld (pyglet headless, EGL) before pygame's window made SDL's GLX surface fail with
    # BadAccess (X_GLXMakeCurrent); the real source is imported first here, as play side by side does
    code = f"""
from envs.sources import make_source
make_source("miniworld").close()
from envs.dream.config import DreamConfig
from envs.play import PlaySession
from envs.play.window import Window
s = PlaySession(DreamConfig(checkpoint={str(tiny_checkpoint)!r}), side_by_side=True)
w = Window(s, 2, save_dir={str(tmp_path)!r})
steps = w.run([0, 2, 1])
print("driver", w.pg.display.get_driver(), "steps", steps, "psnr", s.readouts()["psnr"])
"""
    xvfb, display = _start_xvfb()
    try:
        env = {k: v for k, v in ENV.items() if k not in ("SDL_VIDEODRIVER", "SDL_FRAMEBUFFER_ACCELERATION")}
        p = subprocess.run([sys.executable, "-c", code], env={**env, "DISPLAY": display}, capture_output=True,
                           text=True, timeout=300)
    finally:
        xvfb.terminate()
        xvfb.wait(10)
    assert p.returncode == 0, p.stdout[-2000:] + p.stderr[-2000:]
    assert "driver x11 steps 3" in p.stdout


@pytest.fixture
def server(tiny_checkpoint):
    from envs.dream.config import DreamConfig
    from envs.play import PlaySession
    from envs.play.web import WebPlay

    make = lambda: PlaySession(DreamConfig(checkpoint=str(tiny_checkpoint)), side_by_side=True, seed=3)
    web = WebPlay(make, port=0, save_dir=tempfile.mkdtemp(prefix="memworld-play-"))
    url = web.start()
    assert url.startswith("http://127.0.0.1:")     # localhost only
    yield web
    web.stop()


def test_web_page_loads_and_a_key_press_changes_the_streamed_frame(server):
    import aiohttp

    from envs.play.web import decode_frame

    async def play():
        async with aiohttp.ClientSession() as http:
            async with http.get(server.url) as r:
                page = await r.text()
            assert r.status == 200 and "<canvas" in page and "/ws" in page
            async with http.ws_connect(server.url + "ws") as ws:
                first = json.loads(await ws.receive_str()), decode_frame(await ws.receive_bytes())
                got = []
                for i, key in enumerate(["left", "left", "up"]):
                    await ws.send_str(json.dumps({"key": key, "id": i + 1}))
                    got.append((json.loads(await ws.receive_str()), decode_frame(await ws.receive_bytes())))
                return first, got

    (state0, frame0), got = asyncio.run(play())
    assert state0["step"] == 0 and state0["psnr"] is not None and frame0.shape == (96, 128, 3)
    assert [s["id"] for s, _ in got] == [1, 2, 3] and [s["step"] for s, _ in got] == [1, 2, 3]
    assert not np.array_equal(got[0][1][:, :64], frame0[:, :64])      # the dream pane moved
    assert not np.array_equal(got[0][1][:, 64:], frame0[:, 64:])      # and so did the real one


@pytest.mark.skipif(shutil.which("chromium") is None, reason="chromium is not installed (Debian: apt-get install "
                    "chromium; `make check-play` installs it)")
def test_page_in_headless_chromium_moves_the_dream_on_scripted_key_presses(server):
    from experiments.play import chromium_command

    with tempfile.TemporaryDirectory(prefix="memworld-chromium-") as profile:
        proc = subprocess.Popen(chromium_command("chromium", server.url + "?script=3", profile),
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            assert server.report_ready.wait(120), "the page sent no report"
        finally:
            proc.terminate()
            proc.wait(10)
    rep = server.reports[-1]
    assert rep["step"] == 3 and rep["frames"] == 4 and rep["changed"], rep
    assert len(rep["latencies_ms"]) == 3 and "HeadlessChrome" in rep["user_agent"]
    assert "PSNR dream/real" in rep["status"]


def test_bench_measures_window_and_browser_latency(tmp_path, tiny_checkpoint):
    env = {**ENV, "SDL_VIDEODRIVER": "dummy"}
    p = subprocess.run([sys.executable, "-m", "experiments.cli", "play", "bench=true", "bench_presses=3",
                        f"dream.checkpoint={tiny_checkpoint}", f"runs_root={tmp_path}"], cwd=tmp_path, env=env,
                       capture_output=True, text=True, timeout=600)
    assert p.returncode == 0, p.stdout[-2000:] + p.stderr[-2000:]
    res = json.loads(next(Path(tmp_path).glob("play-bench-*/results.json")).read_text())
    assert res["window"]["median_ms"] > 0 and res["browser"]["median_ms"] > 0 and res["window"]["held_fps"] > 0
    assert p.stdout.strip().splitlines()[-1].startswith("play latency: window median")
