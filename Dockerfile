# Gatehold: identity-aware reverse proxy. Build: docker build -t gatehold .
FROM python:3.11-slim AS build
WORKDIR /src
COPY pyproject.toml README.md ./
COPY gateway ./gateway
COPY rules ./rules
RUN pip install --no-cache-dir --prefix=/install .

FROM python:3.11-slim
RUN useradd --system --uid 10001 --home-dir /var/lib/gatehold --create-home gatehold
COPY --from=build /install /usr/local
COPY rules /usr/local/share/gatehold/rules
USER gatehold
WORKDIR /var/lib/gatehold
VOLUME ["/var/lib/gatehold"]
EXPOSE 8080
ENV GATEHOLD_CONFIG=/etc/gatehold/gatehold.yaml
HEALTHCHECK --interval=15s --timeout=3s --start-period=10s --retries=3 \
  CMD ["python", "-c", "import urllib.request,sys; sys.exit(0 if urllib.request.urlopen('http://127.0.0.1:8080/.gatehold/health', timeout=2).status == 200 else 1)"]
ENTRYPOINT ["gatehold"]
CMD ["serve", "--config", "/etc/gatehold/gatehold.yaml"]
