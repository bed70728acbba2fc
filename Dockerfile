# cosmolet: the agent, ExaBGP and the CLI in one image, plus Debian's FRR for hybrid mode: the
# Helm chart's FRR sidecar runs zebra (and bfdd) from this same image, and the agent's vtysh
# drives bfdd through the shared socket directory. Numbered mode never starts FRR.
#
#   docker build -t cosmolet .
#   docker run --network host cosmolet start --config /etc/cosmolet/config.yaml
#
# BASE_IMAGE is the official python:3.11-slim-bookworm unless given; where no registry is
# reachable, `make image` builds a stand-in from Debian's packages (lab/image) and passes it here.
ARG BASE_IMAGE=python:3.11-slim-bookworm
ARG VERSION=0.1.0

# --- build: cosmolet and every dependency installed under /install, as they will lie in / -------
# (one COPY into the runtime, so no layer of the image keeps the wheels)
FROM ${BASE_IMAGE} AS build
ARG VERSION
WORKDIR /src
COPY pyproject.toml README.md ./
COPY cosmolet ./cosmolet
RUN pip wheel --no-cache-dir --wheel-dir /wheels . \
    && pip install --no-cache-dir --no-index --find-links /wheels --root /install \
       "cosmolet==${VERSION}"

# --- runtime: no compiler, no build tools, no pip cache ------------------------------------------
FROM ${BASE_IMAGE}
ARG VERSION
ARG GIT_COMMIT=unknown
LABEL org.opencontainers.image.title="cosmolet" \
      org.opencontainers.image.description="CNI-agnostic BGP service advertiser for Kubernetes (ExaBGP speaker)" \
      org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.revision="${GIT_COMMIT}" \
      org.opencontainers.image.licenses="AGPL-3.0-only" \
      org.opencontainers.image.source="https://github.com/platformbuilds/cosmolet"
# Fixed ids, so that the chart can name them: the cosmolet user and group 10001 (runAsUser and
# runAsGroup), frr 10002, and frrvty 10003 (vtysh sockets; the chart's supplementalGroups), with
# cosmolet and frr in frrvty. frr's postinst runs `addgroup --system frrvty`, `addgroup --system
# frr` and `adduser --system frr`, which accept an existing group or user only inside adduser's
# system range (100-999 by default) and exit 1 otherwise; so the range covers our ids while frr
# installs, and adduser.conf is restored afterwards. frr and adduser are not pinned (DL3008):
# bookworm ships FRR 8.4.x, and a pinned Debian revision fails the build at its next security
# update.
# hadolint ignore=DL3008
RUN apt-get update \
    && apt-get install -y --no-install-recommends adduser \
    && cp -p /etc/adduser.conf /etc/adduser.conf.dist \
    && printf '%s\n' LAST_SYSTEM_UID=10002 LAST_SYSTEM_GID=10003 >> /etc/adduser.conf \
    && groupadd --system --gid 10001 cosmolet \
    && groupadd --system --gid 10002 frr \
    && groupadd --system --gid 10003 frrvty \
    && useradd --system --uid 10001 --gid cosmolet --groups frrvty --no-create-home \
       --home-dir /nonexistent --shell /usr/sbin/nologin cosmolet \
    && useradd --system --uid 10002 --gid frr --groups frrvty --no-create-home \
       --home-dir /nonexistent --shell /usr/sbin/nologin frr \
    && apt-get install -y --no-install-recommends frr \
    && mv /etc/adduser.conf.dist /etc/adduser.conf \
    && rm -rf /var/lib/apt/lists/* \
    && mkdir -p /run/cosmolet \
    && chown cosmolet:0 /run/cosmolet \
    && chmod 0775 /run/cosmolet
COPY --from=build /install/ /
ENV COSMOLET_GIT_COMMIT=${GIT_COMMIT} \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1
# Numbered mode only connects out (ExaBGP never listens), so it runs unprivileged; hybrid mode
# reads netlink (no privilege needed) and talks to the FRR sidecar's vtysh socket (frrvty).
USER 10001
ENTRYPOINT ["cosmolet"]
CMD ["start", "--config", "/etc/cosmolet/config.yaml"]
