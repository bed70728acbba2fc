# A local stand-in for python:3.11-slim-bookworm, for machines that reach Debian's archive but no
# container registry: DEBIAN_IMAGE is a `docker import` of mmdebstrap's minbase bookworm with
# python3, python3-pip, python3-venv and ca-certificates (lab/image/base.py). Debian's python3 is
# 3.11, the official image's minor and within the project's requires-python (>=3.11).
#
# What the official image provides and Debian's python3 does not: `python` on PATH (Debian
# already has /usr/bin/pip), pip usable system-wide (no EXTERNALLY-MANAGED marker), PATH and LANG.
# What only this local base adds, never the project's Dockerfile: the build machine's CA bundle,
# because downloads from inside a build (pip, apt over https) are trusted only with it here.
ARG DEBIAN_IMAGE=cosmolet-debian:bookworm
FROM ${DEBIAN_IMAGE}
ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
    LANG=C.UTF-8 \
    PIP_CERT=/etc/ssl/certs/ca-certificates.crt
COPY host-ca-certificates.crt /etc/ssl/certs/ca-certificates.crt
RUN ln -s /usr/bin/python3 /usr/local/bin/python \
    && rm /usr/lib/python3.11/EXTERNALLY-MANAGED \
    && rm -rf /var/lib/apt/lists/* /var/cache/apt/*.bin
CMD ["python3"]
