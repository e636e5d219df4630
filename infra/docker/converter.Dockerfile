# Converter image for the tfjs conversion step (browser delivery). tensorflowjs cannot share the TFX
# environment (its tensorflow_decision_forests pin conflicts), so it gets its own, smaller image.
#   docker build -f infra/docker/converter.Dockerfile -t REGISTRY/bloodcell-converter:TAG .
FROM python:3.11-slim-bookworm

ENV PYTHONUNBUFFERED=1 TF_USE_LEGACY_KERAS=1
# Pinned as verified in shared/notes/stack-facts.md (tensorflowjs 4.22.0 with ydf 0.12.0).
RUN pip install --no-cache-dir tensorflowjs==4.22.0 ydf==0.12.0
WORKDIR /converter
ENTRYPOINT ["tensorflowjs_converter"]
