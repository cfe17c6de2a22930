# stream-monitor service image.
#   docker build -t stream-monitor .
#   docker run --rm -p 9308:9308 -v $PWD/deploy/monitor.yaml:/etc/stream-monitor/monitor.yaml:ro \
#     stream-monitor run -c /etc/stream-monitor/monitor.yaml
# The same image runs the traffic simulator (`stream-monitor simulate ...`) in compose.yaml.
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

WORKDIR /src
# Dependencies in their own layer: a stub package lets pip resolve and install them from
# pyproject.toml alone, so a code change does not reinstall numpy, scipy, river, ...
# README.md* : the readme is optional for the build (the glob matches nothing if it is absent).
COPY pyproject.toml README.md* ./
RUN mkdir stream_monitor && touch stream_monitor/__init__.py \
    && pip install . \
    && pip uninstall -y stream-monitor \
    && rm -rf stream_monitor build ./*.egg-info

COPY stream_monitor ./stream_monitor
RUN pip install --no-deps . \
    && cd / \
    && rm -rf /src \
    && groupadd --system --gid 10001 monitor \
    && useradd --system --uid 10001 --gid monitor --no-create-home --shell /usr/sbin/nologin monitor \
    && mkdir -p /etc/stream-monitor /var/lib/stream-monitor \
    && chown monitor:monitor /var/lib/stream-monitor

WORKDIR /var/lib/stream-monitor
USER 10001:10001

# Prometheus /metrics (service.metrics_port)
EXPOSE 9308

ENTRYPOINT ["stream-monitor"]
CMD ["--help"]
