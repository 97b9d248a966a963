# One-command set-up and runs. `make demo` and `make test` each create the virtual environment
# (.venv) on first use and (re)install the package into it.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
export OMPI_ALLOW_RUN_AS_ROOT ?= 1
export OMPI_ALLOW_RUN_AS_ROOT_CONFIRM ?= 1

.PHONY: install test demo dev clean

$(PY):
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --upgrade pip

# torch is pinned here, not in the package (which takes any torch >= 2.1, e.g. a site's own build):
# this machine's CPU build goes in first, so that resolving the range installs nothing more (with
# no torch present, the range pulls the multi-GB CUDA build). `make install TORCH=` skips it.
TORCH ?= torch==2.13.0

install: $(PY)
	$(if $(TORCH),$(PY) -m pip install "$(TORCH)")
	$(PY) -m pip install ".[test]"

test: install
	$(PY) -m pytest

demo: install
	$(VENV)/bin/topodnn demo --save-path results

# Development build: compile in build/dev and drop _core next to the sources (PYTHONPATH=python).
dev: $(PY)
	$(PY) -m pip install -q pybind11
	cmake -S . -B build/dev -G Ninja -DTOPODNN_INPLACE=ON -DMPI_C_COMPILER=$(abspath $(VENV))/bin/mpicc \
	  -DPython_EXECUTABLE=$(abspath $(PY)) -Dpybind11_DIR=$$($(PY) -m pybind11 --cmakedir)
	cmake --build build/dev

clean:
	rm -rf build dist python/topodnn/_core*.so
