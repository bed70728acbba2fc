"""The container image, built and run where no registry is reachable: a private Docker engine
(``engine``), a ``python:3.11-slim-bookworm`` stand-in from Debian's packages (``base``), and the
project's Dockerfile built on it (``build``). ``make image`` and ``tests/integration/
test_image.py`` use them.
"""
