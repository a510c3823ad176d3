"""Playing the dream as a person: one session (``session.py``: dream and real side by side from the same start, the
readouts, saving) and two front ends over it, a desktop window (``window.py``, pygame) and a page in the browser
(``web.py``, aiohttp). The front ends import their libraries themselves: importing this package opens nothing."""

from envs.play.session import HELP, KEY_ACTIONS, PlaySession

__all__ = ["HELP", "KEY_ACTIONS", "PlaySession"]
