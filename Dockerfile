FROM python:3.12-slim
WORKDIR /app
COPY pyproject.toml README.md ./
COPY hub hub
COPY connectors connectors
COPY mappings mappings
COPY webhooks webhooks
RUN pip install --no-cache-dir . && useradd --system --uid 10001 tributary
USER tributary
ENV PROMETHEUS_MULTIPROC_DIR=/tmp/tributary-metrics
EXPOSE 8000
CMD ["hub", "serve", "--host", "0.0.0.0", "--port", "8000"]
