"""rl-zoo3 on the batched dream (``python -m experiments.zoo``); the run itself needs rl-zoo3 (the ``zoo`` extra)."""

from __future__ import annotations

import importlib.util

import pytest
import yaml

from envs import DREAM_IDS
from experiments.configs import CONF
from experiments.zoo import main, ppo_hyperparams


def test_zoo_hyperparams_are_train_agents_ppo_for_every_dream_id():
    hp = ppo_hyperparams(n_envs=4, n_timesteps=1000)
    ppo = yaml.safe_load((CONF / "algo" / "ppo.yaml").read_text())["hyperparams"]
    assert set(hp) == set(DREAM_IDS.values())
    for entry in hp.values():
        assert entry["policy"] == "CnnPolicy" and entry["n_envs"] == 4 and entry["n_timesteps"] == 1000.0
        assert {k: entry[k] for k in ppo} == ppo


@pytest.mark.skipif(importlib.util.find_spec("rl_zoo3") is not None, reason="rl-zoo3 is installed here")
def test_without_rl_zoo3_the_launcher_says_how_to_install_it():
    with pytest.raises(SystemExit, match="memworld\\[zoo\\]"):
        main(["--algo", "ppo", "--env", "memworld/MemoryRooms-Dream-v0"])


@pytest.mark.skipif(importlib.util.find_spec("rl_zoo3") is None, reason="rl-zoo3 is not installed (extra: zoo)")
def test_rl_zoo3_trains_on_one_batched_dream(tmp_path, tiny_checkpoint, monkeypatch):
    from rl_zoo3.exp_manager import ExperimentManager

    built = []
    real = ExperimentManager.create_envs

    def spy(self, *a, **kw):
        env = real(self, *a, **kw)
        built.append(env)
        return env

    monkeypatch.setattr(ExperimentManager, "create_envs", spy)
    conf = tmp_path / "ppo.yml"
    hp = ppo_hyperparams(n_envs=2, n_timesteps=64)
    for entry in hp.values():
        entry.update(n_steps=32, batch_size=32, n_epochs=1)
    conf.write_text(yaml.safe_dump(hp))
    main(["--algo", "ppo", "--env", "memworld/MemoryRooms-Dream-v0", "-n", "64", "--eval-freq", "-1", "-f",
          str(tmp_path / "logs"), "-conf", str(conf), "--env-kwargs", f"checkpoint:'{tiny_checkpoint}'"])
    assert built and built[0].venv.vec.core.n == 2        # one dream of 2 worlds, not 2 one-world dreams
    assert list((tmp_path / "logs" / "ppo").glob("*/memworld-MemoryRooms-Dream-v0.zip"))
