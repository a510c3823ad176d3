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
                          image(tmp_path / "plot.png"))], {"onestep_psnr": 31.0})


def test_report_is_self_contained(tmp_path):
    page = _report(tmp_path).read_text()
    assert "data:image/gif;base64," in page and "data:image/png;base64," in page
    assert "src=\"http" not in page and "<table>" in page and "onestep_psnr" in page


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
