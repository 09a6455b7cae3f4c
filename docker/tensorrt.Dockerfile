# edgekit where TensorRT runs: NVIDIA's TensorRT container (TensorRT, its Python module and trtexec at
# /usr/src/tensorrt/bin), plus cuda-python and edgekit's core with the tensorrt extra. Builds and benchmarks
# engines from the TensorRT-ready ONNX that `edgekit export --target tensorrt-*` writes on any machine.
#   docker build -f docker/tensorrt.Dockerfile -t edgekit-tensorrt .
#   docker run --rm --gpus all -v "$PWD/out:/work" edgekit-tensorrt \
#       edgekit build-engine /work/model-tensorrt-int8.onnx
#   docker run --rm --gpus all -v "$PWD/out:/work" edgekit-tensorrt \
#       edgekit benchmark /work/model-tensorrt-int8-sm90.plan
# Pick the image tag whose TensorRT version the engines must match (NVIDIA's container release notes list
# the TensorRT version of each monthly tag): an engine runs only with the TensorRT that built it.
ARG TRT_IMAGE=nvcr.io/nvidia/tensorrt:24.12-py3
FROM ${TRT_IMAGE}

ENV PIP_NO_CACHE_DIR=1 PYTHONDONTWRITEBYTECODE=1
WORKDIR /edgekit
COPY pyproject.toml constraints.txt requirements-nodeps.txt README.md LICENSE setup.py ./
COPY edgekit ./edgekit
COPY edgekit_demo ./edgekit_demo
COPY targets ./targets
# The container's own tensorrt module stays; cuda-python gives the runner device memory and streams.
RUN python3 -m pip install -c constraints.txt '.[tensorrt]' cuda-python \
 && python3 -c "import tensorrt, cuda; print('TensorRT', tensorrt.__version__)"
ENV PATH="/usr/src/tensorrt/bin:${PATH}"
WORKDIR /work
CMD ["edgekit", "targets"]
