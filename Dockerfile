# syntax=docker/dockerfile:1
# One image for both processes of a production deployment (see docker-compose.yml):
#   docker run relance            -> `relance api` (the default command)
#   docker run relance worker...  -> override the command: `relance worker`, `relance migrate`
FROM python:3.11.13-slim-bookworm

# PYTHONDONTWRITEBYTECODE is deliberately not set: the bytecode compiled below is what the
# worker's workflow sandbox loads each time it creates a workflow instance (without it, it
# compiles the workflow's source again for every instance).
ENV PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

WORKDIR /app

# Dependencies first, read from pyproject.toml alone: this layer is rebuilt only when they change,
# not on every code change.
COPY pyproject.toml ./
RUN python -c "import tomllib; print('\n'.join(tomllib.load(open('pyproject.toml', 'rb'))['project']['dependencies']))" > /tmp/requirements.txt \
    && pip install -r /tmp/requirements.txt \
    && rm /tmp/requirements.txt

# The project itself, as a regular install: playbooks, templates and migrations ship as package
# data. Owned by root: the app user can read, not modify it.
COPY . .
RUN pip install --no-deps . \
    && python -m compileall -q "$(python -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')" /app

# A non-root user; its home is the data dir (RELANCE_DATA_DIR), the only place the app writes.
RUN groupadd --system --gid 10001 relance \
    && useradd --system --uid 10001 --gid relance --home-dir /var/lib/relance --create-home \
       --shell /usr/sbin/nologin relance
ENV RELANCE_DATA_DIR=/var/lib/relance
USER 10001:10001

EXPOSE 8000
CMD ["relance", "api"]
