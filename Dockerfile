# One image for the three Dagster processes (user-code gRPC server, webserver, daemon): the same
# pinned Dagster family everywhere. No secret is baked in: they all arrive as environment variables
# at run time, from docker-compose.yml and the operator's environment file.
FROM python:3.11.14-slim-bookworm

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    DAGSTER_HOME=/opt/dagster/home \
    ARROW_DEFAULT_MEMORY_POOL=jemalloc

WORKDIR /opt/dagster/app

# Dependencies first (pinned exactly in pyproject.toml), so a code change does not reinstall them.
COPY pyproject.toml README.md ./
RUN mkdir taxi_assets && touch taxi_assets/__init__.py \
    && pip install . \
    && pip uninstall -y taxi_assets

COPY taxi_assets ./taxi_assets
RUN pip install --no-deps . \
    && useradd --create-home --uid 10001 dagster \
    && mkdir -p "$DAGSTER_HOME" /data/lake \
    && chown -R dagster:dagster "$DAGSTER_HOME" /data

COPY deploy/dagster.yaml /opt/dagster/home/dagster.yaml
COPY deploy/workspace.yaml ./workspace.yaml

USER dagster
EXPOSE 3000 4000

# The user-code server by default; docker-compose.yml gives the webserver and daemon their commands.
CMD ["dagster", "code-server", "start", "-h", "0.0.0.0", "-p", "4000", "-m", "taxi_assets.definitions"]
