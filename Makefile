# Two commands do all the set-up: `make demo` and `make test`.
PY      ?= python3
VENV    ?= .venv
VPY     := $(VENV)/bin/python
STAMP   := $(VENV)/.memworld-installed
EGL_PKGS := libegl1 libegl-mesa0 libgl1 libgl1-mesa-dri libglu1-mesa libopengl0

.PHONY: demo test setup syslibs xvfb lint clean-runs check-report check-play

$(VPY):
	$(PY) -m venv $(VENV)
	$(VPY) -m pip install -q --upgrade pip

# The CPU build of torch first: a bare `pip install torch` pulls a multi-GB CUDA build.
$(STAMP): $(VPY) pyproject.toml
	@$(VPY) -c "import torch" 2>/dev/null || $(VPY) -m pip install -q torch==2.13.0
	$(VPY) -m pip install -q -e ".[dev]"
	@touch $(STAMP)

# MiniWorld renders headless through Mesa EGL; install its libraries when missing and apt is there.
syslibs:
	@if ! ldconfig -p | grep -q "libEGL.so.1" || ! ldconfig -p | grep -q "libGLU.so.1"; then \
	  if command -v apt-get >/dev/null 2>&1; then \
	    SUDO=$$( [ "$$(id -u)" = 0 ] || echo sudo ); \
	    $$SUDO apt-get update -qq && $$SUDO apt-get install -y -qq $(EGL_PKGS); \
	  else echo "warning: Mesa EGL libraries missing and no apt-get; MiniWorld cannot render"; fi; \
	fi

setup: syslibs $(STAMP)

# An X server for the test that opens memworld play's window on a real display (a few MB; without it that test
# skips and says why).
xvfb:
	@command -v Xvfb >/dev/null 2>&1 || ! command -v apt-get >/dev/null 2>&1 || { SUDO=$$( [ "$$(id -u)" = 0 ] || echo sudo ); \
	  $$SUDO apt-get install -y -qq --no-install-recommends xvfb xauth >/dev/null 2>&1 || \
	  { $$SUDO apt-get update -qq && $$SUDO apt-get install -y -qq --no-install-recommends xvfb xauth >/dev/null; } || \
	  echo "warning: could not install xvfb; the X display test of memworld play will skip"; }

demo: setup
	$(VPY) -m experiments.demo $(ARGS)

test: setup xvfb
	$(VPY) -m pytest tests $(ARGS)

lint: setup
	$(VPY) -m ruff check .

clean-runs:
	rm -rf runs

# Render the demo report in headless Chromium (installs Debian's chromium when missing).
check-report: setup
	@command -v chromium >/dev/null 2>&1 || { SUDO=$$( [ "$$(id -u)" = 0 ] || echo sudo ); $$SUDO apt-get install -y -qq chromium; }
	$(VPY) -m pytest tests/test_report.py -q
	@if [ -f runs/demo/report.html ]; then chromium --headless --no-sandbox --disable-gpu --disable-background-networking \
	  --no-first-run --screenshot=runs/demo/report.png --window-size=1000,2400 file://$(CURDIR)/runs/demo/report.html \
	  && echo "screenshot: runs/demo/report.png"; fi

# memworld play on a real X display (Xvfb) and its page in headless Chromium (installs both when missing), then
# the key-to-frame latency of the window and the page.
check-play: setup xvfb
	@command -v chromium >/dev/null 2>&1 || { SUDO=$$( [ "$$(id -u)" = 0 ] || echo sudo ); $$SUDO apt-get install -y -qq chromium; }
	$(VPY) -m pytest tests/test_play.py -q -rs
	xvfb-run -a -s "-screen 0 1024x768x24 -nolisten tcp" $(VPY) -m experiments.play bench=true $(ARGS)
