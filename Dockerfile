# The ragline HTTP API in server mode (see docker-compose.yml).
FROM python:3.11-slim

ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1 PYTHONUNBUFFERED=1 HF_HUB_OFFLINE=1
WORKDIR /app

# The CPU build of torch first, so nothing pulls a multi-GB CUDA build.
RUN pip install torch==2.13.0 --index-url https://download.pytorch.org/whl/cpu

COPY pyproject.toml README.md ./
COPY pipeline pipeline
COPY connectors connectors
COPY config config
RUN pip install . && useradd --create-home ragline
USER ragline

EXPOSE 8000
CMD ["ragline", "serve", "--host", "0.0.0.0", "--port", "8000"]
