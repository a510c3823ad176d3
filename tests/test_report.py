"""The HTML report is self-contained and renders in headless Chromium (when Chromium is installed)."""

from __future__ import annotations

import shutil
import subprocess

import numpy as np
import pytest

from agents.video import save_gif
from experiments.report import image, table, write_report


def _report(tmp_path):
    frames = np.zeros((4, 64, 64, 3), np.uint8)
    frames[:, 16:48, 16:48, 0] = 255
    save_gif(frames, tmp_path / "clip.gif")
    import imageio.v2 as imageio
    imageio.imwrite(tmp_path / "plot.png", frames[0])
    return write_report(tmp_path / "report.html", "test report",
                        [("Figures", table([["a", 1.5]], ["figure", "value"]) + image(tmp_path / "clip.gif", 128) +
                          image(tmp_path / "plot.png"))],
                        [{"what": "what the dream draws", "figure": "31.0 dB", "meaning": "closer than a copy"}],
                        {"onestep_psnr": 31.0})


def test_report_is_self_contained(tmp_path):
    page = _report(tmp_path).read_text()
    assert "data:image/gif;base64," in page and "data:image/png;base64," in page
    assert "src=\"http" not in page and "<table>" in page and "onestep_psnr" in page
    # the headline in words opens the page, each figure with what it means; the raw figures come last
    assert page.index("what the dream draws") < page.index("closer than a copy") < page.index("<table>") \
        < page.index("onestep_psnr")


@pytest.mark.skipif(shutil.which("chromium") is None, reason="Chromium not installed (make check-report installs it)")
def test_report_renders_in_headless_chromium(tmp_path):
    report = _report(tmp_path)
    shot = tmp_path / "shot.png"
    subprocess.run(["chromium", "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                    "--disable-component-update", "--no-first-run", f"--user-data-dir={tmp_path / 'profile'}",
                    f"--screenshot={shot}", "--window-size=800,600", report.resolve().as_uri()],
                   check=True, capture_output=True, timeout=120)
    import imageio.v2 as imageio
    img = imageio.imread(shot)
    assert img.shape[0] == 600 and (img[..., 0] > 200).any() and img.std() > 5


def _demo_results() -> dict:
    """The stages of a demo, as their figures come back (full float precision, steps/s keyed by worlds)."""
    kind = {"revisit_psnr": 18.123456, "revisit_ssim": 0.5, "self_psnr": 20.0, "nonrevisit_psnr": 20.1,
            "steps_per_s": 500.0}
    hist = lambda *s: [[t, {"real_success_rate": r, "real_return": r, "real_episodes": 20}] for t, r in s]  # noqa: E731
    return {"worldmodel": {"onestep_psnr": 31.47654321, "copy_psnr": 24.5511111, "ae_psnr": 36.19, "stage_seconds": 60.0},
            "revisit": {"none": kind, "fov+reuse+turn": {**kind, "revisit_psnr": 25.2734567}, "best_memory": "fov+reuse+turn",
                        "revisit_gain_db": 7.1501111, "stage_seconds": 90.0},
            "agent": {"algo": "ppo", "task": {"name": "reach", "start_region": [1, 7, -7, -1]}, "max_episode_steps": 100,
                      "real_frames_of_world_model": 56183, "real_success_rate": 0.93,
                      "policy": {"path": "checkpoints/x.zip", "real_success_rate": 0.93, "real_return": 1.0,
                                 "real_episodes": 100, "trained": {"dream_timesteps": 200000}, "same_checkpoint": True},
                      "dream_run": {"dream_timesteps": 20000, "real_success_rate": 0.35, "real_return": 0.3,
                                    "eval_history": hist((10240, 0.2), (20480, 0.35))},
                      "baseline": {"baseline_real_success_rate": 0.95, "baseline_real_return": 1.0,
                                   "baseline_real_frames": 20480, "baseline_eval_history": hist((10240, 0.5), (20480, 0.95))},
                      "stage_seconds": 300.0},
            "throughput": {"dream_steps_per_s": {"1": 112.87397542919255, "32": 451.2345}, "gflop_per_step": 0.35,
                           "real_steps_per_s": {"1": 330.1234, "32": 320.98765}, "achieved_gflops": 150.0,
                           "ceiling_gflops": 300.0, "rss_mb_start": 1300.0, "rss_mb_end": 1400.0, "stage_seconds": 60.0},
            "collect": {"stage_seconds": 5.0}}


def test_the_demo_headline_says_in_words_what_each_figure_means_with_rounded_figures(tmp_path):
    import re

    from experiments.demo_report import build_report, figures, headline

    res = _demo_results()
    lines = headline(res)
    assert [h["what"].split(" (")[0] for h in lines] == ["what the dream draws", "what memory buys on revisits",
                                                         "what the agent achieves in the real env",
                                                         "dream against real speed"]
    text = " ".join(h["figure"] + " " + h["meaning"] for h in lines)
    assert not re.search(r"\d\.\d{3,}", text)                       # rounded: no 112.87397542919255
    assert "31.5 dB" in text and "24.6 dB" in text and "+7.2 dB" in text and "25.3 dB" in text
    assert "93% of 100 real episodes" in text and "95%" in text and "20,480 real frames" in text
    assert "56,183 real frames" in text                              # the dream agent's real frames, beside the baseline's
    assert "451 dream steps/s with 32 worlds" in text and "321 steps/s" in text and "1.4x" in text
    assert all(h["meaning"] for h in lines)
    assert figures(res)["dream_steps_per_s"]["1"] == 112.87397542919255   # results.json keeps the raw figures
    page = build_report(tmp_path, res).read_text()
    assert page.index("what the agent achieves") < page.index("<table>") < page.index("112.87397542919255")
