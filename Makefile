# Two commands for a user: `make demo` (install + the whole pipeline) and `make test` (install + tests).
# Everything installs into a local virtual environment, .venv; nothing touches the system Python.

PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
PIP := $(PY) -m pip
# torch is pinned on the pip line too: without the pin pip may pull gigabytes of CUDA wheels.
TORCH_PIN := torch==2.13.0
STAMP := $(VENV)/.vand_ros-installed
export MUJOCO_GL ?= egl

.PHONY: install demo demo-quick test lint results clean

install: $(STAMP)

$(STAMP): setup.py setup.cfg package.xml
	$(PYTHON) -m venv $(VENV)
	$(PIP) install --quiet --upgrade pip
	$(PIP) install --quiet "$(TORCH_PIN)" -e ".[all]"
	touch $@

demo: $(STAMP)
	$(VENV)/bin/vand-ros demo

demo-quick: $(STAMP)
	$(VENV)/bin/vand-ros demo --quick

test: $(STAMP)
	$(PY) -m pytest

# The comparison in docs/results.md: 8 clean + 16 recovery demonstrations per behaviour (seed 0), every
# regulariser tuned on validation scenarios, then 3 training seeds x 4 behaviours x 5 conditions x every
# execution mode. Resumable: rerun after an interruption. About 80 min on 2 cores.
RESULTS ?= results
results: $(STAMP)
	test -d $(RESULTS)/bags/demos || $(VENV)/bin/vand-ros demos --behaviour all --episodes 8 \
		--out $(RESULTS)/bags/demos
	test -d $(RESULTS)/bags/recovery || $(VENV)/bin/vand-ros demos --behaviour all --episodes 16 \
		--first-episode 8 --perturb dart+push --out $(RESULTS)/bags/recovery
	$(VENV)/bin/vand-ros evaluate --bags $(RESULTS)/bags/demos --train-bags $(RESULTS)/bags/recovery \
		--out $(RESULTS) --tune --jobs 2 --videos

lint: $(STAMP)
	$(VENV)/bin/ruff check vand_ros test launch
	$(VENV)/bin/ruff format --check vand_ros test launch
	$(VENV)/bin/mypy

clean:
	rm -rf $(VENV) build install log .pytest_cache .mypy_cache .ruff_cache *.egg-info
