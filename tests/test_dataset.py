"""Datasets round-trip exactly, and bad files give one clear error."""

from __future__ import annotations

import h5py
import numpy as np
import pytest

from envs.data.collection import collect
from envs.data.dataset import DatasetError, FrameArrays, load_arrays, read_episodes, write_dataset
from envs.sources import make_source


def test_round_trip_is_exact(tiny_dataset):
    path, eps = tiny_dataset
    back = read_episodes(path)
    assert len(back) == len(eps)
    for a, b in zip(eps, back):
        np.testing.assert_array_equal(a.frames, b.frames)
        np.testing.assert_array_equal(a.poses, b.poses)
        np.testing.assert_array_equal(a.actions, b.actions)
        np.testing.assert_array_equal(a.terminations, b.terminations)


def test_arrays_are_contiguous_and_windows_stay_in_episodes(tiny_dataset):
    path, eps = tiny_dataset
    arr = load_arrays(path)
    assert arr.frames.flags["C_CONTIGUOUS"] and len(arr.frames) == sum(len(e.frames) for e in eps)
    starts = arr.window_starts(5)
    ep = arr.episode_of(starts)
    assert np.all(arr.episode_of(starts + 4) == ep)
    train, held = arr.split(1)
    assert len(train.starts) == len(eps) - 1 and len(held.starts) == 1
    np.testing.assert_array_equal(held.frames[0], eps[-1].frames[0])


def test_missing_and_corrupt_datasets(tmp_path, tiny_dataset):
    with pytest.raises(DatasetError, match="no dataset at"):
        load_arrays(tmp_path / "nothing")
    import shutil
    bad = tmp_path / "bad"
    shutil.copytree(tiny_dataset[0], bad)
    h5 = bad / "data" / "main_data.hdf5"
    h5.write_bytes(h5.read_bytes()[:1000])
    with pytest.raises(DatasetError, match="corrupt"):
        load_arrays(bad)


def test_missing_pose_and_wrong_image_size(tmp_path, tiny_dataset):
    import shutil
    nopose = tmp_path / "nopose"
    shutil.copytree(tiny_dataset[0], nopose)
    with h5py.File(nopose / "data" / "main_data.hdf5", "a") as f:
        for ep in f.values():
            del ep["infos"]["pose"]
    with pytest.raises(DatasetError, match="pose"):
        load_arrays(nopose)


def test_write_refuses_bad_episodes_and_leaves_nothing(tmp_path):
    env = make_source("minigrid")
    eps = list(collect(env, "random", 1, seed=0, max_steps=5, progress=False))
    eps[0].frames = eps[0].frames[:, :32]
    with pytest.raises(ValueError, match="frames must be"):
        write_dataset(tmp_path / "ds", eps, 3)
    assert not (tmp_path / "ds").exists()
    assert not any(p.name.startswith(".tmp") for p in tmp_path.iterdir())


def test_interrupted_collection_writes_nothing(tmp_path):
    env = make_source("minigrid")

    def broken():
        yield from collect(env, "random", 1, seed=0, max_steps=5, progress=False)
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        write_dataset(tmp_path / "ds", broken(), 3)
    assert not (tmp_path / "ds").exists()


def test_bad_episode_count():
    env = make_source("minigrid")
    with pytest.raises(ValueError, match="episodes must be >= 1"):
        list(collect(env, "random", -1, seed=0, max_steps=5))
    with pytest.raises(ValueError, match="unknown collection policy"):
        list(collect(env, "spiral", 1, seed=0, max_steps=5))


def test_frame_arrays_from_episodes_pads_actions():
    frames = np.zeros((3, 64, 64, 3), np.uint8)
    from envs.data.dataset import Episode
    ep = Episode(frames, np.zeros((3, 3), np.float32), np.array([1, 2]), np.zeros(2), np.zeros(2, bool), np.zeros(2, bool))
    arr = FrameArrays.from_episodes([ep, ep], 3)
    np.testing.assert_array_equal(arr.actions, [1, 2, 0, 1, 2, 0])
    np.testing.assert_array_equal(arr.starts, [0, 3])


def test_an_existing_dataset_is_refused_unless_replaced(tmp_path, tiny_dataset):
    _, eps = tiny_dataset
    path = tmp_path / "d"
    write_dataset(path, eps[:1], 3)
    with pytest.raises(FileExistsError, match="already exists"):
        write_dataset(path, eps[:2], 3)
    assert len(read_episodes(path)) == 1
    write_dataset(path, eps[:2], 3, replace=True)
    assert len(read_episodes(path)) == 2
    assert [p.name for p in tmp_path.iterdir()] == ["d"]    # nothing of the swap is left behind
