# pconv-course: `make test` and `make lab` set everything up themselves on a machine with
# Python 3.11 (3.10+) and pip. The virtual environment lives in .venv/.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
NB_DIRS := notebooks solutions exercises
PYTEST_NB := -p no:cacheprovider --nbval-lax --nbval-current-env \
	--nbval-sanitize-with tools/nbval_sanitize.cfg --nbval-cell-timeout=600

.PHONY: install test test-lib test-notebooks test-oldest lint exercises check-exercises lab doctor app bench \
	bench-smoke execute-notebooks lock clean

install: $(STAMP)

# Intel Macs (and a Python under Rosetta): torch stops at 2.2.2, whose wheels need NumPy 1.x, so the
# install is constrained by requirements/oldest.txt there.
INTEL_MAC := $(filter Darwin-x86_64,$(shell uname -s 2>/dev/null)-$(shell uname -m 2>/dev/null))
PIN_OLDEST := $(if $(INTEL_MAC),-c requirements/oldest.txt,)

# tools/install_torch.py first: on Linux without an NVIDIA GPU it takes the CPU build of torch
# (about 1 GB instead of 6 GB) from PCONV_TORCH_INDEX (default: PyTorch's CPU index) when that
# answers, else the default index; `pip install -e .` then keeps that torch.
$(STAMP): pyproject.toml tools/install_torch.py
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) tools/install_torch.py $(if $(INTEL_MAC),--constraint requirements/oldest.txt,)
	$(PY) -m pip install --quiet $(PIN_OLDEST) -e '.[test]'
	$(PY) -m ipykernel install --sys-prefix --name python3 --display-name "Python 3 (pconv-course)" >/dev/null
	touch $(STAMP)

lint: install
	$(PY) -m ruff check .

check-exercises: install
	$(PY) tools/make_exercises.py --check

test-lib: install
	$(PY) -m pytest -n 2 tests

test-notebooks: install
	PCONV_QUICK=1 $(PY) -m pytest -n 2 --dist loadfile $(PYTEST_NB) $(NB_DIRS)

test: lint check-exercises test-lib test-notebooks

# The library tests and every notebook on the oldest supported releases (requirements/oldest.txt:
# torch 2.2.2, torchvision 0.17.2, NumPy < 2, the last that Intel Macs can install), in their own
# virtual environment. Not part of `make test`: it installs a second torch (several GB on Linux).
OLDEST_VENV ?= .venv-oldest
OLDEST_PY := $(OLDEST_VENV)/bin/python
test-oldest:
	test -x $(OLDEST_PY) || $(PYTHON) -m venv $(OLDEST_VENV)
	$(OLDEST_PY) -m pip install --quiet --upgrade pip
	$(OLDEST_PY) tools/install_torch.py --constraint requirements/oldest.txt
	$(OLDEST_PY) -m pip install --quiet -c requirements/oldest.txt -e '.[test]'
	$(OLDEST_PY) -c "import torch, torchvision, numpy; print('oldest:', torch.__version__, \
		torchvision.__version__, numpy.__version__)"
	$(OLDEST_PY) -m pytest -n 2 -p no:cacheprovider tests
	PCONV_QUICK=1 $(OLDEST_PY) -m pytest -n 2 --dist loadfile $(PYTEST_NB) $(NB_DIRS)

# Locked workshop installs, one file per platform (requirements/workshop-*.txt, Python 3.11, no test
# tools): uv resolves each platform's wheels from here. Linux leaves out the CUDA libraries that
# only PyPI's CUDA torch needs (the CPU build from tools/install_torch.py needs none); Intel Macs get
# requirements/oldest.txt. --only-binary: every pin has a wheel for its platform (uv would otherwise
# accept a release that only a source build could install there). Apple silicon: macOS 14 or newer (torch after 2.11 has no wheels for
# older macOS there). INSTRUCTORS.md: the wheelhouse and the pre-workshop check use these.
LOCK_VENV ?= .venv-lock
UV := $(LOCK_VENV)/bin/uv
LOCK := $(UV) pip compile pyproject.toml --quiet --upgrade --only-binary :all: --python-version 3.11 --custom-compile-command "make lock"
lock:
	test -x $(UV) || ($(PYTHON) -m venv $(LOCK_VENV) && $(LOCK_VENV)/bin/pip install --quiet uv)
	$(LOCK) --python-platform x86_64-manylinux_2_28 -o requirements/workshop-linux-x86_64.txt
	$(LOCK) --python-platform x86_64-manylinux_2_28 -o requirements/workshop-linux-x86_64.txt \
		$$(sed -n 's/^\(nvidia-[a-z0-9-]*\|triton\)==.*/--no-emit-package \1/p' requirements/workshop-linux-x86_64.txt)
	MACOSX_DEPLOYMENT_TARGET=14.0 $(LOCK) --python-platform aarch64-apple-darwin \
		-o requirements/workshop-macos-arm64.txt
	MACOSX_DEPLOYMENT_TARGET=12.0 $(LOCK) --python-platform x86_64-apple-darwin -c requirements/oldest.txt \
		-o requirements/workshop-macos-x86_64.txt
	$(LOCK) --python-platform x86_64-pc-windows-msvc -o requirements/workshop-windows-x86_64.txt

exercises: install
	$(PY) tools/make_exercises.py

# Re-run every lesson and solution notebook in place (quick mode, as CI), then regenerate exercises.
execute-notebooks: install
	PCONV_QUICK=1 $(PY) tools/execute_notebooks.py notebooks/*.ipynb solutions/*.ipynb
	$(PY) tools/make_exercises.py

# The mode line: quick on a machine without a CUDA GPU (or with CI / PCONV_QUICK set), full on a GPU
# or with PCONV_FULL=1, e.g. `PCONV_FULL=1 make lab`.
lab: install
	@$(PY) -c "from pconv_lib.runtime import describe_mode; print('notebooks will run in', describe_mode())"
	$(VENV)/bin/jupyter lab --notebook-dir=. $(if $(filter 0,$(shell id -u 2>/dev/null)),--allow-root,)

# Is this machine ready for the course? One line per check with the fix; fails when it is not.
doctor: install
	$(PY) -m pconv_lib doctor

# The local web app (step 6): paint holes on a photo in the browser, inpaint with the demo model
# (or CHECKPOINT=runs/NAME/best.pt), download the result. Serves on 127.0.0.1 only; Ctrl-C stops it.
CHECKPOINT ?= demo
app: install
	$(PY) -m pconv_lib app --checkpoint $(CHECKPOINT)
# Every bench script once in its --quick form (a smoke run: does each run to the end?), ~7 min.
bench-smoke: install
	$(PY) -m pytest -q -p no:cacheprovider -m bench tests/test_bench_smoke.py

bench: install
	for f in bench/*.py; do $(PY) $$f || exit 1; done

clean:
	rm -rf $(VENV) $(OLDEST_VENV) .pytest_cache .ruff_cache .hypothesis *.egg-info
