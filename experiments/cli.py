"""The ``memworld`` console script: ``memworld <command> [hydra overrides]``."""

from __future__ import annotations

import importlib
import sys

COMMANDS = {
    "collect": "experiments.collect",
    "train-worldmodel": "experiments.train_worldmodel",
    "encode-dataset": "experiments.encode_dataset",
    "build-map": "experiments.build_map",
    "train-decoder": "experiments.train_decoder",
    "train-pose": "experiments.train_pose",
    "train-depth": "experiments.train_depth",
    "train-agent": "experiments.train_agent",
    "eval-agent": "experiments.eval_agent",
    "loop": "experiments.loop",
    "eval-revisit": "experiments.eval_revisit",
    "bench": "experiments.bench",
    "play": "experiments.play",
    "demo": "experiments.demo",
}


def main(argv: list[str] | None = None) -> None:
    argv = sys.argv[1:] if argv is None else argv
    if not argv or argv[0] in ("-h", "--help"):
        print("usage: memworld <command> [key=value ...]\n\ncommands:\n  " + "\n  ".join(COMMANDS))
        raise SystemExit(0 if argv else 2)
    command, rest = argv[0], argv[1:]
    if command not in COMMANDS:
        print(f"memworld: unknown command {command!r}; choose one of {', '.join(COMMANDS)}", file=sys.stderr)
        raise SystemExit(2)
    module = importlib.import_module(COMMANDS[command])
    sys.argv = [f"memworld {command}", *rest]
    module.main()


if __name__ == "__main__":
    main()
