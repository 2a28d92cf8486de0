# One image for both SageMaker contracts: SageMaker runs `docker run IMAGE train` for a training job
# and `docker run IMAGE serve` for an endpoint; the exec-form ENTRYPOINT turns those into
# `fmnist train` (reads /opt/ml/input, writes /opt/ml/model) and `fmnist serve` (0.0.0.0:8080).
#
#   docker build -t fmnist .                                         # CPU torch
#   docker build --build-arg TORCH_INDEX=https://download.pytorch.org/whl/cu128 -t fmnist .   # CUDA torch
#   docker run --rm -p 8080:8080 fmnist                              # serve the baked-in model
FROM python:3.11-slim

ARG TORCH_INDEX=https://download.pytorch.org/whl/cpu
# the exported model to bake in (from export/, if present); a model in /opt/ml/model takes precedence
ARG MODEL_NAME=cnn-k3-s0.onnx

ENV PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    FMNIST_HOST=0.0.0.0

WORKDIR /opt/fmnist
# torch first, from its own index (a layer that survives code changes)
RUN pip install --index-url "${TORCH_INDEX}" "torch==2.14.1" "torchvision==0.29.1"
COPY pyproject.toml README.md ./
COPY fmnist_tui ./fmnist_tui
RUN pip install . && fmnist --version

# `export*/` matches nothing when there is no export/ folder: the image then has no baked-in model
COPY pyproject.toml export*/ /opt/fmnist/bake/
RUN mkdir -p export && if [ -f "bake/${MODEL_NAME}" ]; then cp "bake/${MODEL_NAME}" export/; fi && rm -rf bake
# serve reads /opt/ml/model first (where SageMaker puts a ModelDataUrl's model.tar.gz), then this one
ENV FMNIST_MODEL=/opt/fmnist/export/${MODEL_NAME}

EXPOSE 8080
ENTRYPOINT ["fmnist"]
CMD ["serve"]
