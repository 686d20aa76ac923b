# DepthART-ROS: every set-up step a fresh machine needs lives here.
#   make test   create .venv, install CPU PyTorch + the package with its test extras, run pytest
#   make demo   same set-up, then the live rosbag replay through the real node (see README)
#   make lint   same set-up, then ruff check + ruff format --check on the whole repository
#   make test-loaded  the test suite 3 times in a row with 2 busy-looping processes (a robot's
#               CPU is never quiet; the suite must not depend on it)
# GPU users pick their PyTorch build:  make test TORCH="torch==2.13.0 --index-url <their wheel index>"
# (on an existing .venv too: a changed TORCH or EXTRAS reinstalls). One test file:
#   make test PYTEST_ARGS=tests/test_cli.py

PYTHON ?= python3
VENV ?= .venv
TORCH ?= torch==2.13.0
EXTRAS ?= ros,onnx,bench,dev,train
PYTEST_ARGS ?= tests
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
# what the venv was built with: rewritten (and so newer than the stamp) only when TORCH or
# EXTRAS change, so `make test TORCH=...` on an existing venv installs that build
SETTINGS := $(VENV)/.settings
WANTED := $(TORCH) | $(EXTRAS)

.PHONY: venv test test-loaded demo lint clean FORCE

$(SETTINGS): FORCE
	@mkdir -p $(VENV)
	@echo '$(WANTED)' | cmp -s - $@ || echo '$(WANTED)' > $@

$(STAMP): setup.py package.xml pyproject.toml $(SETTINGS)
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 10) else "need Python >= 3.10, not " + sys.version.split()[0] + ": make ... PYTHON=python3.11")'
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --upgrade pip setuptools wheel
	$(BIN)/python -m pip install $(TORCH)
	@# another TORCH on an existing venv: pip calls 2.13.0+cpu "satisfied" by torch==2.13.0
	if [ -f $(VENV)/.torch ] && [ "$$(cat $(VENV)/.torch)" != '$(TORCH)' ]; then \
		$(BIN)/python -m pip install --force-reinstall --no-deps $(TORCH); fi
	echo '$(TORCH)' > $(VENV)/.torch
	$(BIN)/python -m pip install -e ".[$(EXTRAS)]"
	touch $(STAMP)

venv: $(STAMP)

test: $(STAMP)
	FASTDDS_BUILTIN_TRANSPORTS=LARGE_DATA $(BIN)/python -m pytest -q $(PYTEST_ARGS)

test-loaded: $(STAMP)
	FASTDDS_BUILTIN_TRANSPORTS=LARGE_DATA $(BIN)/python -m depthart_core.runtime.cpu_load \
		--busy 2 --repeat 3 -- $(BIN)/python -m pytest -q $(PYTEST_ARGS)

demo: $(STAMP)
	FASTDDS_BUILTIN_TRANSPORTS=LARGE_DATA $(BIN)/python -m depthart_ros.replay.demo --out demo_out

lint: $(STAMP)
	$(BIN)/ruff check --extend-exclude '$(VENV)' .
	$(BIN)/ruff format --check --extend-exclude '$(VENV)' .

clean:
	rm -rf $(VENV) demo_out build *.egg-info
