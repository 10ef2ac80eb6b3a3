FROM python:3.11-slim-bookworm
ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1
RUN useradd --system --uid 10001 --home /app rueckhalt && mkdir -p /data && chown rueckhalt /data
WORKDIR /app
# pg_dump/pg_restore for `rueckhalt backup` and `restore`: bookworm's client is PostgreSQL 15, the major version
# of the compose file's server (an older pg_dump refuses a newer server; change both together).
RUN apt-get update && apt-get install -y --no-install-recommends postgresql-client-15 \
    && rm -rf /var/lib/apt/lists/*
COPY requirements ./requirements
# Every dependency pinned with its hashes (make lock); the project itself adds nothing unpinned (--no-deps).
RUN pip install --no-cache-dir --require-hashes -r requirements/build.txt -r requirements/production.txt
COPY pyproject.toml README.md ./
COPY service ./service
COPY workers ./workers
COPY templates ./templates
COPY policies ./policies
# Editable, so templates/ and policies/ beside service/ are found where the code expects them.
RUN pip install --no-cache-dir --no-deps --no-build-isolation -e .
USER rueckhalt
EXPOSE 8000
# The image serves production mode by default: it refuses to start without the secrets, PostgreSQL, Redis,
# the TLS proxy's address (RUECKHALT_TRUSTED_PROXIES) and an https public URL, and never generates secrets.
# Embedded mode (generated secrets, SQLite) is for one machine and listens on loopback only.
ENV RUECKHALT_MODE=production RUECKHALT_BEHIND_TLS=true RUECKHALT_DATA_DIR=/data
CMD ["rueckhalt", "serve", "--host", "0.0.0.0"]
