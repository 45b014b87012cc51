# Gatehold: identity-aware reverse proxy. Build: docker build -t gatehold .
# Run (docs/deployment.md, "Container"):
#   docker run --read-only --tmpfs /tmp -v gatehold-data:/var/lib/gatehold \
#     -e APP_URL=http://app:8080 -p 8080:8080 gatehold
FROM python:3.11-slim AS build
WORKDIR /src
COPY pyproject.toml README.md ./
COPY gateway ./gateway
COPY admin_ui ./admin_ui
COPY rules ./rules
# pip compiles the bytecode here: the image never needs to write it.
RUN pip install --no-cache-dir --prefix=/install .

FROM python:3.11-slim
# A numeric user and group, so Kubernetes' runAsNonRoot can check the image's USER.
# The data folder is the volume, owned by that user and private to it.
RUN groupadd --system --gid 10001 gatehold \
 && useradd --system --uid 10001 --gid 10001 --home-dir /var/lib/gatehold \
      --no-create-home --shell /usr/sbin/nologin gatehold \
 && install -d -o 10001 -g 10001 -m 0700 /var/lib/gatehold
COPY --from=build /install /usr/local
COPY rules /usr/local/share/gatehold/rules
# The settings and rules; mount your own over them (or over the folder).
COPY deploy/container/ /etc/gatehold/
# Nothing is written outside the volume: no bytecode, HOME in it.
ENV GATEHOLD_CONFIG=/etc/gatehold/gatehold.yaml \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    HOME=/var/lib/gatehold
USER 10001:10001
WORKDIR /var/lib/gatehold
VOLUME ["/var/lib/gatehold"]
EXPOSE 8080 9090
# Asks /ready on the admin listener the settings name (server.admin_port, after
# GATEHOLD_* overrides): healthy while the store answers and the audit writer runs.
HEALTHCHECK --interval=15s --timeout=5s --start-period=20s --retries=3 \
  CMD ["python", "-m", "gateway.healthcheck", "--ready"]
ENTRYPOINT ["gatehold"]
CMD ["serve", "--config", "/etc/gatehold/gatehold.yaml"]
