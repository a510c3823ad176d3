"""The desktop front end: a pygame window over a ``PlaySession``.

Keys: arrows turn and move (held, they repeat every frame), r a new start, m the next memory kind, s save the
session, esc quit. The readouts (PSNR between the panes, steps since the place was last visited, memory kind,
frames per second) are printed under the panes.

Why ``SDL_FRAMEBUFFER_ACCELERATION=0``: the real MiniWorld source makes pyglet render headless through EGL as it
is imported; SDL, asked for an accelerated window surface on X11, then makes a GLX context current in the same
process and the X server refuses it (``BadAccess ... X_GLXMakeCurrent``, issue 27). The window only blits a
numpy image, so it needs no GL at all: a software surface removes the second GL stack instead of racing it.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

import numpy as np

from envs.play.session import HELP, KEY_ACTIONS, PlaySession

TEXT_H = 44     # pixels under the panes for the readouts


def _pygame():
    os.environ.setdefault("SDL_FRAMEBUFFER_ACCELERATION", "0")   # software surface: see the module docstring
    os.environ.setdefault("PYGAME_HIDE_SUPPORT_PROMPT", "1")
    import pygame

    return pygame


class Window:
    """A window showing ``session``'s panes at ``scale`` pixels per frame pixel; ``save_dir`` is where s saves."""

    def __init__(self, session: PlaySession, scale: int = 4, save_dir: str | Path = "play-saves"):
        pg = self.pg = _pygame()
        pg.display.init()       # display and font only: pygame.init() would open the audio device too
        pg.font.init()
        self.session, self.scale, self.save_dir = session, scale, Path(save_dir)
        self.font = pg.font.Font(None, 20)
        h, w = session.view().shape[:2]
        self.screen = pg.display.set_mode((max(w * scale, 480), h * scale + TEXT_H))
        pg.display.set_caption("memworld: dream | real")
        self.clock = pg.time.Clock()
        self.message = HELP
        self.running = True
        self.draw()

    def handle(self, events) -> int | None:
        """Apply ``events`` (pygame events); return the action to take this frame, if any."""
        pg, action = self.pg, None
        for event in events:
            if event.type == pg.QUIT:
                self.running = False
            elif event.type == pg.KEYDOWN:
                name = pg.key.name(event.key)
                if name == "escape":
                    self.running = False
                elif name == "r":
                    self.session.reset()
                elif name == "m":
                    self.message = f"memory: {self.session.next_memory()} (same start)"
                elif name == "s":
                    out = self.session.save(self.save_dir / f"save-{self.session.saves + 1}")
                    self.message = f"saved {out['gif']} and {out['dataset']}"
                elif name in KEY_ACTIONS:
                    action = KEY_ACTIONS[name]
        if action is None and pg.display.get_active():     # a held arrow repeats every frame
            held = pg.key.get_pressed()
            for key, a in ((pg.K_UP, 2), (pg.K_LEFT, 0), (pg.K_RIGHT, 1)):
                if held[key]:
                    action = a
                    break
        return action

    def draw(self) -> None:
        pg, s = self.pg, self.scale
        view = self.session.view()
        surf = pg.transform.scale(pg.surfarray.make_surface(view.swapaxes(0, 1)), (view.shape[1] * s, view.shape[0] * s))
        self.screen.fill((0, 0, 0))
        self.screen.blit(surf, (0, 0))
        fps = self.clock.get_fps()
        line = f"{self.session.status_line()}  {fps:.0f} fps  ({self.session.steps_per_second():.0f} steps/s)"
        y = view.shape[0] * s + 4
        self.screen.blit(self.font.render(line, True, (255, 255, 255)), (4, y))
        self.screen.blit(self.font.render(self.message, True, (170, 170, 170)), (4, y + 20))
        pg.display.flip()

    def frame(self, action: int | None = None, max_fps: int = 60) -> int | None:
        """One frame: events (or the given ``action``), a step if there is an action, draw, flip."""
        act = self.handle(self.pg.event.get())
        action = act if action is None else action
        if action is not None:
            self.session.step(action)
        self.draw()
        self.clock.tick(max_fps)
        return action

    def run(self, actions: list[int] | None = None, max_steps: int = 0) -> int:
        """Play until esc (or through the scripted ``actions``, or ``max_steps``); return the steps taken."""
        script = list(actions) if actions is not None else None
        steps = 0
        while self.running:
            a = self.frame(script.pop(0) if script else None)
            steps += a is not None
            if (script is not None and not script) or (max_steps and steps >= max_steps):
                break
        return steps

    def key_latency(self, presses: int = 50, key: str = "left") -> dict[str, float]:
        """Key press -> the new frame flipped to the screen, ``presses`` times: a KEYDOWN posted to SDL's event
        queue (where the OS's key press lands), then the frames until the flip that shows its step. Also the frame
        rate with the key held (a step every frame), in frames per second."""
        pg = self.pg
        code = {"left": pg.K_LEFT, "right": pg.K_RIGHT, "up": pg.K_UP}[key]
        lat = []
        for _ in range(presses):
            t0 = time.perf_counter()
            pg.event.post(pg.event.Event(pg.KEYDOWN, key=code, mod=0, unicode="", scancode=0))
            self.frame(max_fps=0)
            lat.append(time.perf_counter() - t0)
        t0 = time.perf_counter()
        for _ in range(presses):
            self.frame(KEY_ACTIONS[key], max_fps=0)
        held_fps = presses / (time.perf_counter() - t0)
        ms = np.array(lat) * 1000
        return {"median_ms": float(np.median(ms)), "p95_ms": float(np.percentile(ms, 95)), "held_fps": held_fps,
                "presses": presses}

    def close(self) -> None:
        self.pg.display.quit()
