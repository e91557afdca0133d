# dsod-depth: `make demo` and `make test` each set everything up on first use.
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed
# The CPU/GPU wheels of torch and torchvision that this kit is tested with.
TORCH_PINS ?= torch==2.14.1 torchvision==0.29.1

.PHONY: setup test test-slow test-all lint demo bench gpu-check clean system-deps

setup: $(STAMP)

# Open3D's Linux wheel links against libusb-1.0; install it when the system lacks it.
system-deps:
	@if ldconfig -p 2>/dev/null | grep -q 'libusb-1.0.so.0'; then :; \
	elif command -v apt-get >/dev/null 2>&1 && [ "$$(id -u)" = 0 ]; then \
	  echo "installing libusb-1.0-0 (needed by open3d)"; \
	  (apt-get install -y -qq libusb-1.0-0 >/dev/null 2>&1 || \
	   (apt-get update -qq >/dev/null 2>&1 && apt-get install -y -qq libusb-1.0-0 >/dev/null 2>&1)) || \
	  { echo "error: could not install libusb-1.0-0 (needed by open3d); install it with your package manager, e.g. 'sudo apt-get install libusb-1.0-0'"; exit 2; }; \
	else \
	  echo "error: libusb-1.0 is missing (needed by open3d); install it with your package manager, e.g. 'sudo apt-get install libusb-1.0-0', then rerun make"; exit 2; \
	fi

$(STAMP): pyproject.toml | system-deps
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --disable-pip-version-check $(TORCH_PINS)
	$(PY) -m pip install -q --disable-pip-version-check -e ".[dev]"
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
