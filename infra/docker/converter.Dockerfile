# Converter image for the tfjs conversion step (browser delivery). tensorflowjs cannot share the TFX
# environment (its tensorflow_decision_forests pin needs TensorFlow 2.19), so it has its own lock.
#   docker build -f infra/docker/converter.Dockerfile -t REGISTRY/bloodcell-converter:TAG .
FROM python:3.11-slim-bookworm

ENV PYTHONUNBUFFERED=1 TF_USE_LEGACY_KERAS=1 VIRTUAL_ENV=/opt/venv PATH=/opt/venv/bin:$PATH
COPY infra/env/tools.lock locks/converter.lock /tmp/locks/
RUN python -m venv /opt/venv \
 && pip install --no-cache-dir -r /tmp/locks/tools.lock \
 && uv pip sync --python /opt/venv/bin/python --require-hashes /tmp/locks/converter.lock
WORKDIR /converter
ENTRYPOINT ["tensorflowjs_converter"]
