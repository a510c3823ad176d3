"""Run folders under ``runs/``: one per command invocation, never shared, with the
resolved config beside the results, and ``results.json`` written atomically."""

from __future__ import annotations

import datetime as dt
import json
import os
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, OmegaConf

import experiments.conf  # noqa: F401  (registers the dream group before any command composes its config)
from worldmodels.checkpoint import atomic_write_bytes


def make_run_dir(command: str, root: str | Path = "runs", name: str | None = None) -> Path:
    """Create and return a fresh folder ``root/<command>-<time>-<pid>[-n]`` (or ``root/name``).

    ``os.mkdir`` is atomic, so two processes never get the same folder.
    """
    root = Path(root)
    root.mkdir(parents=True, exist_ok=True)
    if name:
        run = root / name
        run.mkdir(parents=True, exist_ok=True)  # a named run is reused on purpose (resume)
        return run
    stamp = dt.datetime.now().strftime("%Y%m%d-%H%M%S")
    for n in range(1000):
        run = root / f"{command}-{stamp}-{os.getpid()}" if n == 0 else root / f"{command}-{stamp}-{os.getpid()}-{n}"
        try:
            run.mkdir()
            return run
        except FileExistsError:
            continue
    raise RuntimeError(f"could not create a run folder under {root}")


def save_config(run: Path, cfg: DictConfig) -> None:
    """Write the resolved config as ``config.yaml`` in ``run``."""
    atomic_write_bytes(run / "config.yaml", OmegaConf.to_yaml(cfg, resolve=True).encode())


def write_results(run: Path, results: dict[str, Any]) -> Path:
    """Write ``results.json`` atomically, add the date, and print the figures last."""
    results = {**results, "date": dt.date.today().isoformat()}
    path = run / "results.json"
    atomic_write_bytes(path, json.dumps(results, indent=2, default=_jsonable).encode())
    print(json.dumps(results, indent=2, default=_jsonable))
    print(f"results: {path}")
    return path


def _jsonable(x: Any) -> Any:
    try:
        return x.item()
    except AttributeError:
        return str(x)
