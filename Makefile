# DepthART-ROS: every set-up step a fresh machine needs lives here.
#   make test   create .venv, install CPU PyTorch + the package with its test extras, run pytest
#   make demo   same set-up, then the live rosbag replay through the real node (see README)
#   make lint   same set-up, then ruff check + ruff format --check on the whole repository
#   make test-loaded  the test suite 3 times in a row with 2 busy-looping processes (a robot's
#               CPU is never quiet; the suite must not depend on it)
# GPU users pick their PyTorch build:  make test TORCH="torch==2.13.0 --index-url <their wheel index>"

PYTHON ?= python3
VENV ?= .venv
TORCH ?= torch==2.13.0
EXTRAS ?= ros,onnx,bench,dev,train
PYTEST_ARGS ?=
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: venv test test-loaded demo lint clean

$(STAMP): setup.py package.xml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --upgrade pip setuptools wheel
	$(BIN)/python -m pip install $(TORCH)
	$(BIN)/python -m pip install -e ".[$(EXTRAS)]"
	touch $(STAMP)

venv: $(STAMP)

test: $(STAMP)
	FASTDDS_BUILTIN_TRANSPORTS=LARGE_DATA $(BIN)/python -m pytest -q $(PYTEST_ARGS) tests

test-loaded: $(STAMP)
	FASTDDS_BUILTIN_TRANSPORTS=LARGE_DATA $(BIN)/python -m depthart_core.runtime.cpu_load \
		--busy 2 --repeat 3 -- $(BIN)/python -m pytest -q $(PYTEST_ARGS) tests

demo: $(STAMP)
	FASTDDS_BUILTIN_TRANSPORTS=LARGE_DATA $(BIN)/python -m depthart_ros.replay.demo --out demo_out

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

clean:
	rm -rf $(VENV) demo_out build *.egg-info
