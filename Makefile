# pconv-course: `make test` and `make lab` set everything up themselves on a machine with
# Python 3.11 (3.10+) and pip. The virtual environment lives in .venv/.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
NB_DIRS := notebooks solutions exercises
PYTEST_NB := -p no:cacheprovider --nbval-lax --nbval-current-env \
	--nbval-sanitize-with tools/nbval_sanitize.cfg --nbval-cell-timeout=600

.PHONY: install test test-lib test-notebooks lint exercises check-exercises lab doctor app bench bench-smoke execute-notebooks clean

install: $(STAMP)

$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[test]'
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
	rm -rf $(VENV) .pytest_cache .ruff_cache .hypothesis *.egg-info
