# Pipeline image for Kubeflow: every component runs from it; the Trainer gets a GPU on the cluster.
# CUDA runtime from NVIDIA's base, glibc 2.39 from Ubuntu 24.04 (TFX 1.21's wheels need it) and
# Python 3.13 from the deadsnakes PPA (24.04's own archive has none). Packages come from the same lock the local environment uses; the base
# image brings the CUDA 12 and cuDNN 9 libraries that the tensorflow 2.21 wheel loads on a GPU.
#   docker build -f infra/docker/pipeline.Dockerfile -t REGISTRY/bloodcell-pipeline:TAG .
FROM nvidia/cuda:12.8.1-cudnn-runtime-ubuntu24.04

ENV DEBIAN_FRONTEND=noninteractive PYTHONUNBUFFERED=1 TF_USE_LEGACY_KERAS=1 \
    VIRTUAL_ENV=/opt/venv PATH=/opt/venv/bin:$PATH PYTHONPATH=/pipeline \
    BLOODCELL_TFJS_CONVERTER=/opt/converter-venv/bin/tensorflowjs_converter
RUN apt-get update && apt-get install -y --no-install-recommends software-properties-common \
 && add-apt-repository -y ppa:deadsnakes/ppa && apt-get update \
 && apt-get install -y --no-install-recommends python3.13 python3.13-venv python3.13-dev build-essential ca-certificates \
 && rm -rf /var/lib/apt/lists/*

WORKDIR /pipeline
COPY infra/env/tools.lock locks/pipeline.lock locks/converter.lock /tmp/locks/
COPY infra/env/converter_shims/ /tmp/converter_shims/
RUN python3.13 -m venv /opt/venv \
 && pip install --no-cache-dir --require-hashes -r /tmp/locks/tools.lock \
 && uv pip sync --python /opt/venv/bin/python --require-hashes /tmp/locks/pipeline.lock
# The tfjs converter's own environment, as infra/env/setup.sh builds it (requirements/converter.in).
RUN python3.13 -m venv /opt/converter-venv \
 && uv pip sync --python /opt/converter-venv/bin/python --require-hashes /tmp/locks/converter.lock \
 && cp -r /tmp/converter_shims/tensorflow_decision_forests /opt/converter-venv/lib/python3.13/site-packages/ \
 && /opt/converter-venv/bin/python -c "import tensorflowjs"

# The code the pipeline spec names by import path (the warm-up images are serving's package data).
COPY pyproject.toml ./
COPY pipeline/ pipeline/
COPY components/ components/
COPY models/ models/
COPY serving/ serving/

# The components run as an unprivileged user; they write only to the pipeline root, the serving and
# CDN buckets, and /tmp.
# Ubuntu's images from 23.04 on hold a user 'ubuntu' with uid 1000: useradd would refuse the uid.
RUN (userdel --remove ubuntu 2>/dev/null || true) \
 && useradd --uid 1000 --create-home --shell /usr/sbin/nologin bloodcell
USER 1000:1000

# KubeflowV2DagRunner's containers start TFX's own entrypoint with their arguments.
ENTRYPOINT ["python", "-m", "tfx.orchestration.kubeflow.v2.container.kubeflow_v2_run_executor"]
