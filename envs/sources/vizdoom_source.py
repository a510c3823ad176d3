"""ViZDoom source: the bundled ``my_way_home`` maze behind the source contract.

Map: ``my_way_home.wad`` (MAP01), a small maze of rooms with different wall textures, so
revisits are recognisable; the scenario rewards picking up the vest (+1, ends the
episode) and costs 0.0001 per tic. The spawn point and heading come from the scenario's
script and follow the seed. The scenario's 2100-tic timeout is replaced by
``max_episode_steps`` (truncation).

Pose scale: 64 Doom map units = 1 pose unit (``x = POSITION_X / 64``, ``y = POSITION_Y / 64``),
so the map spans x 2.5..17.5, y -11..2 and the player (radius 16 units) is 0.5 wide;
``yaw = radians(ANGLE)``, Doom's angle 0 looks along +x and 90 along +y.

Actions: 0 turns left and 1 turns right by exactly 22.5 degrees (one tic of
TURN_LEFT_RIGHT_DELTA; 22.5 degrees is 4096 units of Doom's 16-bit turn command, so turns
add up exactly: 16 turns make a circle and return the same ANGLE bit for bit, and four
turns span the 90-degree field of view). 2 walks forward (MOVE_FORWARD) for
``forward_tics`` = 3 tics and coasts to a stop: 24.7 map units (0.39 pose units) on free floor.

Exact returns: Doom has momentum and its console ``warp`` only takes whole map units, so
every step ends at rest on the whole-unit grid: after moving, no-op tics run until the
velocity is zero, then the player is warped to the nearest whole-unit position whose
bounding box clears the walls (at most 0.71 units away). The pose of every reset and step
is therefore exact in float32, and ``render_at`` (``+sv_cheats 1``, ``warp``, then one
tic of exact turning, then one tic to render) re-renders it: ``render_at(pose)`` was
bit-identical (mean abs pixel difference 0.0) to the observation at every pose of 16-turn
circles and of 2 x 200-step random walks; the one exception is the vest's two-frame blink
animation, which depends on game time: up to 0.098 when the vest is in view (measured).
Poses not on the grid are rounded to it (yaw to Doom's 1/65536 turn).
"""

from __future__ import annotations

import math
import os
import tempfile

import numpy as np
import vizdoom as vzd

from envs.sources.base import IMAGE_SIZE, PoseOutsideMapError, SCENE_BOUNDS, SourceEnv, make_pose

SCALE = 64.0  # Doom map units per pose unit
TURN_DEG = 22.5
PLAYER_RADIUS = 16.0  # map units
_TURN_UNITS = 65536  # Doom's turn command resolution per circle
_GV = vzd.GameVariable


class ViZDoomSource(SourceEnv):
    """``my_way_home`` behind the source contract. Actions: 0 left, 1 right, 2 forward.

    ``render_at`` tolerance: mean abs pixel difference 0.0 at reported poses, up to 0.098
    with the blinking vest in view. It raises ``PoseOutsideMapError`` unless the pose is in
    a sector with the player box overlapping walls by at most one map unit. A call runs four
    game tics (living reward counted in no step; the vest's blink phase moves on) and leaves
    the agent at rest where it was; after termination it restarts the game internally.
    """

    source_name = "vizdoom"
    turns_per_circle = 16  # 22.5-degree turns
    map_bounds = SCENE_BOUNDS["vizdoom"]

    def __init__(self, max_episode_steps: int = 300, render_mode: str | None = None,
                 forward_tics: int = 3, max_settle_tics: int = 100):
        super().__init__(n_actions=3, render_mode=render_mode)
        self.max_episode_steps = max_episode_steps
        self.forward_tics = forward_tics
        self.max_settle_tics = max_settle_tics
        g = vzd.DoomGame()
        g.load_config(os.path.join(vzd.scenarios_path, "my_way_home.cfg"))
        g.set_doom_config_path(os.path.join(tempfile.gettempdir(), "memworld_vizdoom.ini"))  # not _vizdoom.ini in cwd
        g.set_window_visible(False)
        g.set_sound_enabled(False)
        g.set_screen_resolution(vzd.ScreenResolution.RES_160X120)
        g.set_screen_format(vzd.ScreenFormat.RGB24)
        for setter in (g.set_render_hud, g.set_render_weapon, g.set_render_crosshair, g.set_render_messages,
                       g.set_render_particles, g.set_render_decals, g.set_render_effects_sprites,
                       g.set_render_screen_flashes):
            setter(False)
        g.set_available_buttons([vzd.Button.TURN_LEFT_RIGHT_DELTA, vzd.Button.MOVE_FORWARD])
        g.set_episode_timeout(0)  # truncation is ours
        g.set_sectors_info_enabled(True)
        g.add_game_args("+sv_cheats 1")
        g.init()
        self.game = g
        g.new_episode()
        sectors = g.get_state().sectors
        self._sectors = [np.array([(ln.x1, ln.y1, ln.x2, ln.y2) for ln in s.lines], dtype=np.float64) for s in sectors]
        self._walls = np.array([(ln.x1, ln.y1, ln.x2, ln.y2) for s in sectors for ln in s.lines if ln.is_blocking],
                               dtype=np.float64)
        h, w = g.get_screen_height(), g.get_screen_width()
        self._rows = ((np.arange(IMAGE_SIZE) + 0.5) * h / IMAGE_SIZE).astype(np.intp)
        self._cols = ((np.arange(IMAGE_SIZE) + 0.5) * w / IMAGE_SIZE).astype(np.intp)
        self._pose = make_pose(0.0, 0.0, 0.0)
        self._steps = 0

    # -- geometry (map units) ---------------------------------------------------------
    def _box_hits_wall(self, x: float, y: float, r: float) -> bool:
        x1, y1, x2, y2 = self._walls.T
        near = ((np.minimum(x1, x2) < x + r) & (np.maximum(x1, x2) > x - r)
                & (np.minimum(y1, y2) < y + r) & (np.maximum(y1, y2) > y - r))
        cx, cy = x + np.array([[-r], [r], [r], [-r]]), y + np.array([[-r], [-r], [r], [r]])
        side = (x2 - x1) * (cy - y1) - (y2 - y1) * (cx - x1)  # corners x walls
        return bool(np.any(near & (side.min(0) < 0) & (side.max(0) > 0)))

    def _in_sector(self, x: float, y: float) -> bool:
        for lines in self._sectors:
            x1, y1, x2, y2 = lines.T
            crosses = (y1 > y) != (y2 > y)
            with np.errstate(divide="ignore", invalid="ignore"):
                x_at = x1 + (y - y1) * (x2 - x1) / (y2 - y1)
            if np.count_nonzero(crosses & (x < x_at)) % 2 == 1:
                return True
        return False

    # -- game plumbing ----------------------------------------------------------------
    def _raw(self) -> tuple[float, float, float]:
        g = self.game
        return g.get_game_variable(_GV.POSITION_X), g.get_game_variable(_GV.POSITION_Y), g.get_game_variable(_GV.ANGLE)

    def _teleport(self, ix: int, iy: int, deg: float) -> float:
        """Warp to whole map units ``(ix, iy)`` and turn to ``deg``; returns the reward.

        Doom turns in 1/65536 of a circle and ViZDoom floors the delta to that unit, so
        the delta is sent as the nearest whole number of units plus half a unit. The frame
        of the warp tic still shows the old view: one more tic renders the new one.
        """
        units = round(math.remainder(self._raw()[2] - deg, 360.0) * _TURN_UNITS / 360.0)  # > 0 turns right
        self.game.send_game_command(f"warp {ix} {iy}")
        reward = self.game.make_action([(units + 0.5) * 360.0 / _TURN_UNITS, 0.0], 1)
        return reward + self.game.make_action([0.0, 0.0], 1)

    def _settle(self) -> float:
        g, reward = self.game, 0.0
        for _ in range(self.max_settle_tics):
            if g.is_episode_finished() or (g.get_game_variable(_GV.VELOCITY_X) == 0
                                           and g.get_game_variable(_GV.VELOCITY_Y) == 0):
                break
            reward += g.make_action([0.0, 0.0], 1)
        return reward

    def _snap(self, deg: float | None = None) -> float:
        """Move the resting player to the nearest whole-unit spot clear of walls (and to ``deg``)."""
        x, y, a = self._raw()
        cands = sorted(((cx, cy) for cx in {math.floor(x), math.ceil(x)} for cy in {math.floor(y), math.ceil(y)}),
                       key=lambda c: (c[0] - x) ** 2 + (c[1] - y) ** 2)
        ix, iy = next((c for c in cands if not self._box_hits_wall(c[0], c[1], PLAYER_RADIUS)), cands[0])
        return self._teleport(ix, iy, a if deg is None else deg)

    def _screen(self) -> np.ndarray:
        buf = self.game.get_state().screen_buffer
        return np.ascontiguousarray(buf[self._rows][:, self._cols])

    def _read_pose(self) -> None:
        x, y, a = self._raw()
        self._pose = make_pose(x / SCALE, y / SCALE, math.radians(a))

    # -- contract ---------------------------------------------------------------------
    def pose(self) -> np.ndarray:
        return self._pose.copy()

    def reset(self, *, seed: int | None = None, options: dict | None = None) -> tuple[np.ndarray, dict]:
        super().reset(seed=seed)
        self.game.set_seed(int(self.np_random.integers(2**31 - 1)))
        self.game.new_episode()
        # Headings on the 22.5-degree grid, positions on the whole-unit grid.
        self._snap(deg=TURN_DEG * round(self._raw()[2] / TURN_DEG))
        self._last_obs = self._screen()
        self._read_pose()
        self._steps = 0
        return self._last_obs, {"pose": self.pose()}

    def step(self, action: int) -> tuple[np.ndarray, float, bool, bool, dict]:
        a = self.check_action(action)
        g = self.game
        if a == 2:
            reward = g.make_action([0.0, 1.0], self.forward_tics) + self._settle()
            if not g.is_episode_finished():
                reward += self._snap()
        else:
            reward = g.make_action([TURN_DEG if a == 1 else -TURN_DEG, 0.0], 1)
        terminated = g.is_episode_finished()
        self._read_pose()
        if not terminated:
            self._last_obs = self._screen()
        else:  # Doom gives no frame after the end: render the final pose instead
            try:
                self._last_obs = self.render_at(self._pose)
            except PoseOutsideMapError:
                pass  # keep the previous frame
        self._steps += 1
        truncated = not terminated and self._steps >= self.max_episode_steps
        return self._last_obs, float(reward), terminated, truncated, {"pose": self.pose()}

    def render_at(self, pose: np.ndarray) -> np.ndarray:
        x, y, yaw = (float(v) for v in np.asarray(pose, dtype=np.float64).reshape(3))
        x0, x1, y0, y1 = self.map_bounds
        if not all(math.isfinite(v) for v in (x, y, yaw)) or not (x0 <= x <= x1 and y0 <= y <= y1):
            raise PoseOutsideMapError(f"pose {[x, y, yaw]} is outside the my_way_home bounds {self.map_bounds}")
        ix, iy = round(x * SCALE), round(y * SCALE)
        if not self._in_sector(ix, iy) or self._box_hits_wall(ix, iy, PLAYER_RADIUS - 1.0):
            raise PoseOutsideMapError(f"pose {[x, y, yaw]} is inside a wall or outside the my_way_home rooms")
        g = self.game
        if g.is_episode_finished():
            g.new_episode()
        saved = self._raw()
        try:
            self._teleport(ix, iy, math.degrees(yaw))
            if self._raw()[:2] != (ix, iy):
                raise PoseOutsideMapError(f"warp to pose {[x, y, yaw]} reached {self._raw()[:2]}, not {(ix, iy)}")
            return self._screen()
        finally:
            self._teleport(round(saved[0]), round(saved[1]), saved[2])

    def close(self) -> None:
        self.game.close()
