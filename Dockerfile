# The hub image: one distribution, one console script; the compose file picks the worker.
FROM python:3.11-slim
WORKDIR /app
COPY pyproject.toml README.md ./
COPY hub ./hub
COPY connectors ./connectors
COPY projections ./projections
COPY schemas ./schemas
COPY policies ./policies
RUN pip install --no-cache-dir .
ENV HUB_HOME=/var/lib/crmhub HUB_SCHEMAS_DIR=/app/schemas HUB_POLICIES_DIR=/app/policies
ENTRYPOINT ["crmhub"]
