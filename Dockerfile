# cosmolet: the agent, ExaBGP and the CLI in one image, plus Debian's FRR for hybrid mode: the
# Helm chart's FRR sidecar runs zebra (and bfdd) from this same image, and the agent's vtysh
# drives bfdd through the shared socket directory. Numbered mode never starts FRR.
#
#   docker build -t cosmolet .
#   docker run --network host cosmolet start --config /etc/cosmolet/config.yaml

# --- build: a wheel of cosmolet and of every dependency ----------------------------------------
FROM python:3.11-slim-bookworm AS build
WORKDIR /src
COPY pyproject.toml README.md ./
COPY cosmolet ./cosmolet
RUN pip wheel --no-cache-dir --wheel-dir /wheels .

# --- runtime: no compiler, no build tools, no pip cache ------------------------------------------
FROM python:3.11-slim-bookworm
ARG VERSION=0.1.0
ARG GIT_COMMIT=unknown
LABEL org.opencontainers.image.title="cosmolet" \
      org.opencontainers.image.description="CNI-agnostic BGP service advertiser for Kubernetes (ExaBGP speaker)" \
      org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.revision="${GIT_COMMIT}" \
      org.opencontainers.image.licenses="AGPL-3.0-only" \
      org.opencontainers.image.source="https://github.com/platformbuilds/cosmolet"
# Fixed ids, so that the chart can name them: frr 10002, frrvty (vtysh sockets) 10003, and the
# cosmolet user 10001 in frrvty. Debian's postinst keeps existing users and groups. frr is not
# pinned (DL3008): bookworm ships 8.4.x, and a pinned Debian revision fails the build at its
# next security update.
# hadolint ignore=DL3008
RUN groupadd --system --gid 10002 frr \
    && groupadd --system --gid 10003 frrvty \
    && useradd --system --uid 10002 --gid frr --groups frrvty --no-create-home \
       --shell /usr/sbin/nologin frr \
    && apt-get update \
    && apt-get install -y --no-install-recommends frr \
    && rm -rf /var/lib/apt/lists/*
COPY --from=build /wheels /wheels
RUN pip install --no-cache-dir --no-index --find-links /wheels "cosmolet==${VERSION}" \
    && rm -rf /wheels \
    && useradd --system --uid 10001 --groups frrvty --no-create-home \
       --shell /usr/sbin/nologin cosmolet \
    && mkdir -p /run/cosmolet \
    && chown cosmolet /run/cosmolet
ENV COSMOLET_GIT_COMMIT=${GIT_COMMIT} \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1
# Numbered mode only connects out (ExaBGP never listens), so it runs unprivileged; hybrid mode
# reads netlink (no privilege needed) and talks to the FRR sidecar's vtysh socket (frrvty).
USER 10001
ENTRYPOINT ["cosmolet"]
CMD ["start", "--config", "/etc/cosmolet/config.yaml"]
