# Two commands on a fresh machine:
#   make serve   install everything into .venv, then serve the embedded model on http://127.0.0.1:5000
#   make test    install everything into .venv, then run the test suite
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: install serve test bench image

install: $(STAMP)

$(STAMP): pyproject.toml
	test -x $(PY) || python3 -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	# torch first, pinned: the CPU build (an unpinned torch pulls a multi-GB CUDA build)
	$(PY) -m pip install -q torch==2.13.0
	# llama-cpp-python compiles from source on first install (~5 min), then pip's cache reuses the wheel
	$(PY) -m pip install -q -e '.[torch,test,gemma,deploy]'
	touch $@

serve: $(STAMP)
	$(VENV)/bin/pocketlm serve

test: $(STAMP)
	$(PY) -m pytest -q

# Not part of CI. Run on a quiet machine (nothing else using the CPU): ~40 min, all five servers
# at c = 1, 4, 16, 32; writes BENCHMARKS.md, benchmarks/serving.png and benchmarks/results.json.
bench: $(STAMP)
	$(PY) -m pip install -q -e '.[torch,test,bench]'
	$(PY) benchmarks/run.py

# Not part of CI. The container: builds the image (a local Debian base when Docker Hub is unreachable: BASE=...
# takes any bookworm image with python3), runs it, answers the README's curl; prints size and start-to-ready.
# Needs a running dockerd and BuildKit (DOCKER=/usr/bin/docker for Debian's docker.io client).
IMAGE ?= pocketlm:latest
BASE ?= pocketlm-base:bookworm
image:
	docker/prove.sh $(IMAGE) $(BASE)
