"""``memworld play``: drive the dream in a pygame window; shows the frame, the pose and the
retrieved memory frames; ``side_by_side=true`` steps the real env with the same actions.
Keys: left/right turn, up forward, r reset, esc quit. Headless (``SDL_VIDEODRIVER=dummy``)
with scripted ``actions`` it runs without a screen."""

from __future__ import annotations

import os

import hydra
import numpy as np
from omegaconf import DictConfig

from experiments.conf import dream_config

KEYS = {"left": 0, "right": 1, "up": 2}


def compose_view(dream: np.ndarray, memory: np.ndarray, real: np.ndarray | None) -> np.ndarray:
    """Top row: dream (and real); bottom row: memory frames at half size."""
    top = dream if real is None else np.concatenate([dream, real], axis=1)
    mem = memory[:, ::2, ::2] if len(memory) else np.zeros((1, 32, 32, 3), np.uint8)
    row = np.concatenate(list(mem), axis=1)
    width = max(top.shape[1], row.shape[1])
    pad = lambda a: np.pad(a, ((0, 0), (0, width - a.shape[1]), (0, 0)))
    return np.concatenate([pad(top), pad(row)], axis=0)


def play(cfg: DictConfig) -> int:
    import pygame

    from envs.dream import DreamEnv
    from envs.sources import make_source

    dream = dream_config(cfg.dream)
    env = DreamEnv(source=dream.source, config=dream, render_mode="rgb_array", render_memory=True)
    real = make_source(dream.source) if cfg.side_by_side else None
    obs, info = env.reset(seed=cfg.seed)
    real_obs = None
    if real is not None:
        real_obs, _ = real.reset(seed=cfg.seed)
    pygame.init()
    font = pygame.font.Font(None, 20)
    view = compose_view(obs, env.core.memory_frames(0), real_obs)
    screen = pygame.display.set_mode((view.shape[1] * cfg.scale, view.shape[0] * cfg.scale + 24))
    pygame.display.set_caption("memworld dream")
    clock, steps = pygame.time.Clock(), 0
    script = list(cfg.actions) if cfg.actions is not None else None
    running = True
    while running:
        action = None
        for event in pygame.event.get():
            if event.type == pygame.QUIT:
                running = False
            elif event.type == pygame.KEYDOWN:
                name = pygame.key.name(event.key)
                if name == "escape":
                    running = False
                elif name == "r":
                    obs, info = env.reset()
                elif name in KEYS:
                    action = KEYS[name]
        if script is not None:
            action = script.pop(0) if script else None
            running = running and (bool(script) or action is not None)
        if action is not None:
            obs, reward, term, trunc, info = env.step(action)
            if real is not None:
                real_obs, *_ = real.step(action)
            steps += 1
            if term or trunc:
                obs, info = env.reset()
        view = compose_view(obs, env.core.memory_frames(0), real_obs)
        surf = pygame.surfarray.make_surface(np.repeat(np.repeat(view, cfg.scale, 0), cfg.scale, 1).swapaxes(0, 1))
        screen.fill((0, 0, 0))
        screen.blit(surf, (0, 0))
        x, y, yaw = info["pose"]
        text = f"step {steps}  pose ({x:.2f}, {y:.2f}, {np.degrees(yaw):.0f} deg)  since visit {info['steps_since_visit']}"
        screen.blit(font.render(text, True, (255, 255, 255)), (4, view.shape[0] * cfg.scale + 4))
        pygame.display.flip()
        clock.tick(60)
        if cfg.max_steps and steps >= cfg.max_steps:
            running = False
    pygame.quit()
    print(f"played {steps} steps; last pose {info['pose'].tolist()}")
    return steps


@hydra.main(config_path="conf", config_name="play", version_base="1.3")
def main(cfg: DictConfig) -> None:
    dream_config(cfg.dream)   # checked before any window opens
    if cfg.actions is None and os.environ.get("SDL_VIDEODRIVER") == "dummy" and not cfg.max_steps:
        raise ValueError("no screen (SDL_VIDEODRIVER=dummy): give scripted actions=[...] or max_steps")
    play(cfg)


if __name__ == "__main__":
    main()
