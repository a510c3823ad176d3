"""``memworld train-worldmodel dataset=<folder>``: train and save a ``WorldModel``.

Resume an interrupted run by giving the same ``run_name``. Works under
``torchrun --nproc_per_node=N -m experiments.train_worldmodel ...`` (rank 0 writes).
The training run itself is ``envs.data.training``.
"""

from __future__ import annotations

import os

import hydra
import numpy as np
from omegaconf import DictConfig

from envs.data.training import prepare, train_world_model
from experiments.configs import worldmodel_training
from experiments.runs import make_run_dir, save_config, write_results


def log_rollout_video(writer, model, arrays, step: int, horizon: int = 16, n: int = 4) -> None:
    """Tensorboard video ``worldmodel/rollout``: real frames beside open-loop dream frames, same actions."""
    from agents.video import add_video
    from worldmodels.evaluation import rollout

    starts = arrays.window_starts(model.context + horizon)
    if len(starts) == 0:
        return
    pick = np.random.default_rng(0).choice(starts, min(n, len(starts)), replace=False)
    gen, _ = rollout(model, arrays.frames, arrays.actions, arrays.poses, pick, horizon)
    real = arrays.frames[pick[:, None] + model.context + np.arange(horizon)]
    video = np.concatenate([np.concatenate([real[i], gen[i]], axis=2) for i in range(len(pick))], axis=1)
    add_video(writer, "worldmodel/rollout_real_vs_dream", video, step)


@hydra.main(config_path="conf", config_name="train_worldmodel", version_base="1.3")
def main(dcfg: DictConfig) -> None:
    rank0 = int(os.environ.get("RANK", "0")) == 0   # under torchrun only rank 0 writes
    if not rank0 and not dcfg.run_name:
        raise ValueError("under torchrun give run_name=<name> so that every rank uses the same run folder")
    training = worldmodel_training(dcfg)
    prepared = prepare(training)
    run = make_run_dir("train-worldmodel", dcfg.runs_root, dcfg.run_name)
    if rank0:
        save_config(run, dcfg)
    res = train_world_model(training, run, prepared, after_fit=log_rollout_video)
    if rank0:
        write_results(run, res)


if __name__ == "__main__":
    main()
