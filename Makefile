# Two set-up commands on a fresh machine with Python 3.11: `make demo` and `make test`.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
# Eight fake CPU devices so sharding code runs on a laptop or CI machine.
TEST_ENV := XLA_FLAGS=--xla_force_host_platform_device_count=8 TF_CPP_MIN_LOG_LEVEL=3 JAX_PLATFORMS=cpu

.PHONY: install test test-fast demo bench clean

$(VENV)/.installed: setup.py
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e '.[test,interop]'
	touch $@

install: $(VENV)/.installed

# Everything (what CI runs): two workers, each test file on one worker (its module fixtures are
# built once), the slowest tests listed at the end. Markers: pytest.ini.
test: install
	$(TEST_ENV) $(PY) -m pytest -q -n 2 --dist loadfile --durations=15 tests

# The inner loop: the unit tests only (no training run, no binary started), on two workers.
test-fast: install
	$(TEST_ENV) $(PY) -m pytest -q -n 2 --dist loadfile -m unit --durations=10 tests

# The CPU demo (about 13 minutes): the `demo` preset of synthetic_pretraining.launch.mini_table1,
# started quietly as every `python -m synthetic_pretraining.*` binary; runs land in
# runs/mini_table1_demo under the working directory, and rerunning skips finished runs.
demo: install
	JAX_PLATFORMS=cpu $(PY) -m synthetic_pretraining.launch.mini_table1 --preset=demo

bench: install
	$(TEST_ENV) $(PY) benchmarks/train_throughput.py

clean:
	rm -rf $(VENV) runs

# Python 3.12 with the newest jax and flax the index serves (jax 0.12 needs Python >= 3.12): its
# own virtual environment inside .venv/ (ignored, and skipped by the tests that walk the tree),
# the unit tests (`pytest -m unit`). .ci/run's Python 3.12 leg runs it.
# pyenv's 3.12 when there is one (its python3.12 shim fails unless 3.12 is selected), else python3.12.
PYTHON312 ?= $(or $(lastword $(sort $(wildcard $(shell pyenv root 2>/dev/null)/versions/3.12.*/bin/python3))),python3.12)
VENV312 ?= $(VENV)/py312
PY312 := $(VENV312)/bin/python

$(VENV312)/.installed: setup.py
	$(PYTHON312) -m venv $(VENV312)
	$(PY312) -m pip install -q --upgrade pip
	$(PY312) -m pip install -q -e '.[test]'
	$(PY312) -c "import jax, flax, sys; print('Python', sys.version.split()[0], 'jax', jax.__version__, 'flax', flax.__version__)"
	touch $@

.PHONY: test-py312
test-py312: $(VENV312)/.installed
	$(TEST_ENV) $(PY312) -m pytest -q -n 2 --dist loadfile -m unit tests
