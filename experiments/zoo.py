"""rl-zoo3 on the batched dream: ``python -m experiments.zoo --algo ppo --env memworld/MemoryRooms-Dream-v0 -n 100000``
takes ``rl_zoo3.train``'s arguments (``pip install 'memworld[zoo]'``).

rl-zoo3 builds its VecEnv with SB3's ``make_vec_env`` from N single envs: N one-world dreams stepped one after
another. Here its ``ExperimentManager.default_vec_env_cls`` is ``batched_dream``, so the same call builds one dream
of N worlds. ``--gym-packages envs`` is implied; without ``-conf``, PPO on a dream id trains with train-agent's
hyperparameters (``conf/algo/ppo.yaml``), ``CnnPolicy`` and 16 envs. rl-zoo3's per-env monitor files are not
written (the batched dream's episode statistics come from SB3's ``VecMonitor``)."""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path

import yaml
from omegaconf import OmegaConf

from envs import DREAM_IDS
from envs.dream.sb3 import batched_dream
from experiments.configs import command_config


def ppo_hyperparams(n_envs: int = 16, n_timesteps: int = 100_000) -> dict:
    """rl-zoo3's hyperparameter entries for every dream id: train-agent's PPO settings."""
    ppo = OmegaConf.to_container(command_config("train_agent").algo.hyperparams)
    return {env_id: {"policy": "CnnPolicy", "n_envs": n_envs, "n_timesteps": float(n_timesteps), **ppo}
            for env_id in DREAM_IDS.values()}


def main(argv: list[str] | None = None) -> None:
    try:
        from rl_zoo3 import train as zoo_train
        from rl_zoo3.exp_manager import ExperimentManager
    except ImportError as exc:
        raise SystemExit(f"rl-zoo3 is not installed ({exc}): pip install 'memworld[zoo]'") from None
    args = list(sys.argv[1:] if argv is None else argv)
    if "--gym-packages" not in args:
        args += ["--gym-packages", "envs"]
    elif "envs" not in args:
        args.insert(args.index("--gym-packages") + 1, "envs")
    algo = args[args.index("--algo") + 1] if "--algo" in args else "ppo"
    with tempfile.TemporaryDirectory() as tmp:
        if algo == "ppo" and not {"-conf", "--conf-file"} & set(args):
            conf = Path(tmp) / "ppo.yml"
            conf.write_text(yaml.safe_dump(ppo_hyperparams()))
            args += ["-conf", str(conf)]
        # a plain function as a class attribute would be bound to the manager: staticmethod keeps it a callable
        ExperimentManager.default_vec_env_cls = staticmethod(batched_dream)
        sys.argv = ["rl_zoo3.train", *args]
        zoo_train.train()


if __name__ == "__main__":
    main()
