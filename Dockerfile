# The exporter image of the telemetry bundle (docker-compose.telemetry.yml).
#   docker build -t telemetry-exporter:0.1.0 .
#   docker run -v "$PWD/telemetry-logs:/data/telemetry-logs:ro" -v exporter-state:/state \
#     -e LOKI_URL=http://loki:3100 -p 127.0.0.1:9464:9464 telemetry-exporter:0.1.0
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

WORKDIR /src
# pyproject.toml names README.md as the package readme: both are needed to build.
COPY pyproject.toml README.md ./
COPY exporter ./exporter
RUN pip install . \
    && useradd --system --uid 10001 --no-create-home --shell /usr/sbin/nologin exporter \
    && mkdir -p /state /data/telemetry-logs \
    && chown exporter /state

# Positions, dead letter and the aggregation state (which makes restarts change nothing) live
# in /state: mount a named volume there.
VOLUME ["/state"]
USER exporter
WORKDIR /state
EXPOSE 9464

HEALTHCHECK --interval=15s --timeout=5s --start-period=60s --retries=5 \
    CMD ["python", "-c", "import urllib.request; urllib.request.urlopen('http://127.0.0.1:9464/healthz', timeout=4)"]

ENTRYPOINT ["telemetry-exporter"]
CMD ["serve", "/data/telemetry-logs", "--listen", "0.0.0.0:9464", "--state-dir", "/state"]
