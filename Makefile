# dsod-depth: `make demo` and `make test` each set everything up on first use.
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed
# The CPU/GPU wheels of torch and torchvision that this kit is tested with.
TORCH_PINS ?= torch==2.14.1 torchvision==0.29.1

.PHONY: setup test test-slow test-all lint demo bench gpu-check clean

setup: $(STAMP)

# Install, then ask Open3D itself whether it loads: on Linux its wheel needs the system library
# libusb-1.0, which tools/check_open3d.py installs with apt-get when run as root (otherwise it says
# what to install). The stamp is written only once the check passes.
$(STAMP): pyproject.toml
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --disable-pip-version-check $(TORCH_PINS)
	$(PY) -m pip install -q --disable-pip-version-check -e ".[dev]"
	$(PY) tools/check_open3d.py
	@touch $(STAMP)

lint: $(STAMP)
	$(VENV)/bin/ruff check .

# The main job: the whole study on SynthRooms (about 15 minutes on two CPU cores).
demo: $(STAMP)
	$(VENV)/bin/dsod-depth demo

# The default suite: lint, then every test not marked slow.
test: $(STAMP)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/python -m pytest -q -m "not slow"

test-slow: $(STAMP)
	$(VENV)/bin/python -m pytest -q -m slow

test-all: $(STAMP)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/python -m pytest -q

bench: $(STAMP)
	@for b in benchmarks/bench_*.py; do echo "== $$b"; $(PY) $$b || exit $$?; done

# The GPU acceptance check (about 5 minutes on one H100); on a machine without CUDA it says so and exits 0.
gpu-check: $(STAMP)
	$(PY) benchmarks/gpu_check.py

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache
