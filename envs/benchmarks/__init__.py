"""Measurements of a world model and of its dream that commands share: figures on held-out real episodes
(``worldmodel``), dream against real steps/s and memory over long runs (``throughput``), and the revisit
benchmark (``revisit``: its dreams, ``revisit_scores``: its scores, ``revisit_plots``: its figures).

Each takes typed arguments (a ``DreamConfig``, a ``WorldModel``, a small dataclass) and returns a dict of
figures; the commands (``bench``, ``eval-revisit``, ``demo``) only build those arguments and write the dicts."""
