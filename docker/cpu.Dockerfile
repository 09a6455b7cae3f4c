# Reproducible CPU toolchain for edgekit: Python 3.11, the pinned stack from constraints.txt
# (torch 2.13.0 CPU wheel, TensorFlow 2.21, ONNX Runtime 1.32, LiteRT 2.3), and the tests.
#   docker build -f docker/cpu.Dockerfile -t edgekit-cpu .
#   docker run --rm -v "$PWD:/work" edgekit-cpu export /work/model.onnx --target onnx-int8 --calib /work/calib.npz -o /work/out
#   docker run --rm --entrypoint make edgekit-cpu test
FROM python:3.11-slim-bookworm

ENV PIP_NO_CACHE_DIR=1 PYTHONDONTWRITEBYTECODE=1 TF_CPP_MIN_LOG_LEVEL=3 HF_HUB_OFFLINE=1
RUN apt-get update \
 && apt-get install -y --no-install-recommends make git openssh-server openssh-client \
 && rm -rf /var/lib/apt/lists/*

WORKDIR /edgekit
COPY pyproject.toml setup.py constraints.txt requirements-nodeps.txt README.md LICENSE Makefile ./
COPY edgekit ./edgekit
COPY edgekit_demo ./edgekit_demo
COPY targets ./targets
# The CPU wheel of torch comes from PyTorch's CPU index, so the multi-GB CUDA build is never pulled.
RUN python -m venv .venv \
 && .venv/bin/pip install --upgrade pip \
 && .venv/bin/pip install --extra-index-url https://download.pytorch.org/whl/cpu -c constraints.txt -e '.[all,dev]' \
 && .venv/bin/pip install --no-deps -r requirements-nodeps.txt \
 && touch .venv/.installed
COPY tests ./tests
COPY benchmarks ./benchmarks
ENV PATH=/edgekit/.venv/bin:$PATH
ENTRYPOINT ["edgekit"]
CMD ["--help"]
