"""``memworld play``: drive the dream with the arrow keys, the real env beside it from the same start.

A desktop window by default (``envs/play/window.py``); ``web=true`` serves the same panes and keys as a page on
localhost (``envs/play/web.py``); ``bench=true`` measures key press -> new frame on screen for both and writes
``results.json``. Headless (``SDL_VIDEODRIVER=dummy``) with scripted ``actions`` the window runs without a screen.
The session itself (panes, readouts, memory switch, saving) is ``envs.play.PlaySession``.
"""

from __future__ import annotations

import os
import platform
import shutil
import subprocess
import sys
import tempfile

import hydra
import numpy as np
from omegaconf import DictConfig

from experiments.conf import dream_config
from experiments.runs import make_run_dir, save_config, write_results


def make_session(cfg: DictConfig):
    import torch

    from envs.play import PlaySession

    torch.set_num_threads(cfg.threads)

    return PlaySession(dream_config(cfg.dream), side_by_side=cfg.side_by_side, seed=cfg.seed,
                       warmup_action=cfg.warmup_action)


def find_chromium() -> str | None:
    return shutil.which("chromium") or shutil.which("chromium-browser") or shutil.which("google-chrome")


def chromium_command(chromium: str, url: str, profile: str) -> list[str]:
    """Headless Chromium on ``url``, as root in a container allows it, with a fresh profile and no network chatter."""
    return [chromium, "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
            "--no-first-run", "--disable-extensions", f"--user-data-dir={profile}", "--window-size=800,600", url]


def browser_latency(cfg: DictConfig, presses: int, timeout: float = 180.0) -> dict:
    """Key -> frame drawn in headless Chromium on the page itself (``?script=N``); without Chromium, a Python
    websocket client's key -> frame received and decoded, and says so."""
    from envs.play.web import WebPlay

    server = WebPlay(lambda: make_session(cfg), port=0)
    url = server.start()
    try:
        chromium = find_chromium()
        if chromium is not None:
            with tempfile.TemporaryDirectory(prefix="memworld-chromium-") as profile:
                proc = subprocess.Popen(chromium_command(chromium, f"{url}?script={presses}", profile),
                                        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
                try:
                    if not server.report_ready.wait(timeout):
                        raise RuntimeError(f"headless Chromium sent no report within {timeout:.0f} s")
                finally:
                    proc.terminate()
                    proc.wait(10)
            ms = np.array(server.reports[-1]["latencies_ms"][1:])    # the first includes the page's warm-up
            client = "headless Chromium (page: key event -> frame painted)"
        else:
            ms = np.array(python_client_latency(url, presses))
            client = "Python websocket client (key sent -> frame decoded); Chromium not installed"
    finally:
        server.stop()
    return {"median_ms": float(np.median(ms)), "p95_ms": float(np.percentile(ms, 95)), "presses": len(ms),
            "client": client}


def python_client_latency(url: str, presses: int) -> list[float]:
    import asyncio
    import json
    import time

    import aiohttp

    from envs.play.web import decode_frame

    async def run() -> list[float]:
        out = []
        async with aiohttp.ClientSession() as http, http.ws_connect(url + "ws") as ws:
            await ws.receive_str()
            await ws.receive_bytes()
            for i in range(presses):
                t0 = time.perf_counter()
                await ws.send_str(json.dumps({"key": "left", "id": i + 1}))
                await ws.receive_str()
                decode_frame(await ws.receive_bytes())
                out.append((time.perf_counter() - t0) * 1000)
        return out

    return asyncio.run(run())


def bench(cfg: DictConfig) -> tuple:
    """Key press -> new frame on screen, window and browser, one world on this machine."""
    import torch

    from envs.play.window import Window

    if not os.environ.get("DISPLAY"):
        os.environ.setdefault("SDL_VIDEODRIVER", "dummy")
    run = make_run_dir("play-bench", cfg.runs_root)
    save_config(run, cfg)
    session = make_session(cfg)
    window = Window(session, cfg.scale, save_dir=run)
    win = window.key_latency(cfg.bench_presses)
    win["video_driver"] = window.pg.display.get_driver()
    window.close()
    session.close()
    web = browser_latency(cfg, cfg.bench_presses)
    load = os.getloadavg()
    return run, {"window": win, "browser": web, "side_by_side": cfg.side_by_side, "memory": session.memory,
                 "torch_threads": torch.get_num_threads(), "cpu": platform.processor() or platform.machine(),
                 "cpus": os.cpu_count(), "load_avg_1min": load[0]}


@hydra.main(config_path="conf", config_name="play", version_base="1.3")
def main(cfg: DictConfig) -> None:
    dream_config(cfg.dream)   # checked before any window opens
    if cfg.bench:
        run, res = bench(cfg)
        write_results(run, res)
        print(f"play latency: window median {res['window']['median_ms']:.1f} ms, p95 {res['window']['p95_ms']:.1f} ms, "
              f"held {res['window']['held_fps']:.0f} fps; browser median {res['browser']['median_ms']:.1f} ms, "
              f"p95 {res['browser']['p95_ms']:.1f} ms")
        return
    if cfg.web:
        from envs.play.web import WebPlay

        WebPlay(lambda: make_session(cfg), cfg.port, save_dir=make_run_dir("play", cfg.runs_root)).serve_forever()
        return
    if cfg.actions is None and os.environ.get("SDL_VIDEODRIVER") == "dummy" and not cfg.max_steps:
        raise ValueError("no screen (SDL_VIDEODRIVER=dummy): give scripted actions=[...] or max_steps, or use web=true")
    if cfg.actions is None and sys.platform.startswith("linux") and not os.environ.get("DISPLAY") \
            and not os.environ.get("WAYLAND_DISPLAY") and os.environ.get("SDL_VIDEODRIVER") != "dummy":
        raise SystemExit("no display here: `memworld play web=true` serves the same game as a page on localhost "
                         f"(port {cfg.port}; from another machine: ssh -L {cfg.port}:localhost:{cfg.port} this-host)")
    from envs.play.window import Window

    session = make_session(cfg)
    window = Window(session, cfg.scale, save_dir=make_run_dir("play", cfg.runs_root))   # s saves here, never over another run
    steps = window.run(list(cfg.actions) if cfg.actions is not None else None, cfg.max_steps)
    window.close()
    session.close()
    print(f"played {steps} steps; last pose {session.dream_pose.tolist()}  ({session.status_line()})")


if __name__ == "__main__":
    main()
