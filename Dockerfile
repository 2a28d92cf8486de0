# Two images from one file, for SageMaker's two contracts. The exec-form ENTRYPOINT turns SageMaker's
# `docker run IMAGE serve` into `fmnist serve` (0.0.0.0:8080) and `docker run IMAGE train` into
# `fmnist train` (reads /opt/ml/input, writes /opt/ml/model).
#   serve (the default target): the base install, no torch — an endpoint only classifies
#   train: adds the [train] extra (torch, torchvision, onnx, …) for training jobs; it also serves
#
#   docker build -t fmnist .                                         # serving image
#   docker build --target train -t fmnist-train .                    # training image, CPU torch
#   docker build --target train --build-arg TORCH_INDEX=https://download.pytorch.org/whl/cu128 -t fmnist-train .
#   docker run --rm -p 8080:8080 fmnist                              # serve the baked-in model
# (BuildKit, Docker's default builder, builds only the stages the target needs.)

# the exported model to bake in (from export/, if present); a model in /opt/ml/model takes precedence
ARG MODEL_NAME=resnet-shift2-s0.onnx
ARG TORCH_INDEX=https://download.pytorch.org/whl/cpu

FROM python:3.11-slim AS python
ENV PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    FMNIST_HOST=0.0.0.0
WORKDIR /opt/fmnist
EXPOSE 8080
ENTRYPOINT ["fmnist"]
CMD ["serve"]

# `export*/` matches nothing when there is no export/ folder: the images then have no baked-in model
FROM python AS model
ARG MODEL_NAME
COPY pyproject.toml export*/ /bake/
RUN mkdir -p export && if [ -f "/bake/${MODEL_NAME}" ]; then cp "/bake/${MODEL_NAME}" export/; fi

FROM python AS train
ARG MODEL_NAME
ARG TORCH_INDEX
# torch first, from its own index (a layer that survives code changes)
RUN pip install --index-url "${TORCH_INDEX}" "torch==2.14.1" "torchvision==0.29.1"
COPY pyproject.toml README.md LICENSE ./
COPY fmnist_tui ./fmnist_tui
# the wheel maps export/ into the package (pyproject.toml); the models themselves are copied in below
RUN mkdir -p export && pip install ".[train]" && fmnist --version
COPY --from=model /opt/fmnist/export ./export
# serve reads /opt/ml/model first (where SageMaker puts a ModelDataUrl's model.tar.gz), then this one
ENV FMNIST_MODEL=/opt/fmnist/export/${MODEL_NAME}

# last, so a plain `docker build` gives it
FROM python AS serve
ARG MODEL_NAME
COPY pyproject.toml README.md LICENSE ./
COPY fmnist_tui ./fmnist_tui
RUN mkdir -p export && pip install . && fmnist --version && ! python -c "import torch" 2>/dev/null
COPY --from=model /opt/fmnist/export ./export
ENV FMNIST_MODEL=/opt/fmnist/export/${MODEL_NAME}
