# pocketlm as a container: the embedded SmolLM2 served on port 5000 by a non-root user.
#
#   docker build --build-arg BASE=pocketlm-base:bookworm -t pocketlm .      (`make image` builds, runs and checks it)
#   docker run -p 5000:5000 -e POCKETLM_SLOTS=8 pocketlm
#
# BASE is any Debian bookworm image with python3 and python3-venv (docker/base-image.sh makes one without a
# registry). Targets: the last stage (default) serves HTTP; `lambda` is the AWS Lambda image (Mangum);
# `lambda-stream` is `pocketlm serve` behind the Lambda Web Adapter, for streamed responses.
ARG BASE=debian:bookworm-slim
ARG LWA_IMAGE=public.ecr.aws/awsguru/aws-lambda-adapter:0.9.1

# ---- builder: compile llama-cpp-python, install everything into /opt/venv with uv, prepare the model ----
FROM ${BASE} AS builder
RUN apt-get update \
 && apt-get install -y --no-install-recommends build-essential cmake python3-dev python3-venv \
 && rm -rf /var/lib/apt/lists/*
RUN python3 -m venv /opt/uv && /opt/uv/bin/pip install --no-cache-dir uv==0.13.9
# UV_NATIVE_TLS: trust the system's certificate store (a proxy's CA included), like pip does.
# LLAMA_CMAKE_ARGS: a portable x86-64 build (AVX2/FMA), not tuned to the build machine's CPU, so the image
# runs on any recent x86 server (Lambda's included). Override for another CPU family.
ARG LLAMA_CMAKE_ARGS="-DGGML_NATIVE=OFF -DGGML_AVX=ON -DGGML_AVX2=ON -DGGML_FMA=ON -DGGML_F16C=ON"
ENV UV_NATIVE_TLS=1 UV_LINK_MODE=copy UV_COMPILE_BYTECODE=1 CMAKE_BUILD_PARALLEL_LEVEL=2
RUN /opt/uv/bin/uv venv /opt/venv --python /usr/bin/python3
# Dependencies first, from pyproject.toml alone: this layer (and its 5-30 min llama.cpp compile) is reused
# while only src/ or the README change.
COPY pyproject.toml /src/
RUN CMAKE_ARGS="$LLAMA_CMAKE_ARGS" /opt/uv/bin/uv pip install --no-cache --python /opt/venv/bin/python \
        -r /src/pyproject.toml --extra lambda
COPY README.md /src/
COPY src /src/src
RUN /opt/uv/bin/uv pip install --no-cache --no-deps --python /opt/venv/bin/python /src
ENV POCKETLM_CACHE=/opt/pocketlm-cache
# pocketlm's attention kernel (src/pocketlm/llama_library.py): libggml-cpu rebuilt from the same llama.cpp source
# with pocketlm's patch, as portable as llama-cpp-python's (CMAKE_ARGS), into the cache shipped with the image.
# pip fetches that source (llm, which the embedded model's package uses, already depends on pip).
RUN /opt/uv/bin/uv pip install --no-cache --python /opt/venv/bin/python pip \
 && CMAKE_ARGS="$LLAMA_CMAKE_ARGS" /opt/venv/bin/python -m pocketlm.llama_library
# Run the model once: requantizes the embedded Q4_1 file to q8_0 into the cache shipped with the image, so
# a container (read-only on Lambda) starts without writing anything, and proves the build works.
# The cache's files are written through temporary files (mode 0600, root's): readable by the runtime user.
RUN /opt/venv/bin/pocketlm generate "The capital of France is" --temperature 0 --max-new-tokens 4 \
 && chmod -R a+rX /opt/pocketlm-cache

# ---- runtime: Python, the venv and the prepared model; no compiler ----
FROM ${BASE} AS runtime
# libgomp1: llama.cpp's threads are OpenMP's (the builder had it with gcc).
RUN apt-get update \
 && apt-get install -y --no-install-recommends libgomp1 \
 && apt-get clean && rm -rf /var/lib/apt/lists/* \
 && useradd --system --uid 10001 --home-dir /home/pocketlm --create-home pocketlm
COPY --from=builder /opt/venv /opt/venv
COPY --from=builder /opt/pocketlm-cache /opt/pocketlm-cache
# Every flag of `pocketlm serve` is a POCKETLM_* variable: override any of them with `docker run -e`.
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    POCKETLM_CACHE=/opt/pocketlm-cache \
    POCKETLM_HOST=0.0.0.0 \
    POCKETLM_PORT=5000
USER pocketlm
WORKDIR /home/pocketlm
EXPOSE 5000
HEALTHCHECK --interval=30s --timeout=5s --start-period=30s --retries=3 \
    CMD python3 -c "import urllib.request; urllib.request.urlopen('http://127.0.0.1:${POCKETLM_PORT}/health', timeout=4)"
CMD ["pocketlm", "serve"]

# ---- AWS Lambda, buffered: Mangum behind the runtime interface client; the model loads at init ----
FROM runtime AS lambda
ENTRYPOINT ["python3", "-m", "awslambdaric"]
CMD ["pocketlm.deploy.lambda_handler.handler"]

# ---- AWS Lambda, streamed: the Lambda Web Adapter extension proxies to `pocketlm serve` ----
FROM ${LWA_IMAGE} AS lambda-web-adapter
FROM runtime AS lambda-stream
COPY --from=lambda-web-adapter /lambda-adapter /opt/extensions/lambda-adapter
ENV AWS_LWA_INVOKE_MODE=response_stream \
    AWS_LWA_PORT=5000 \
    AWS_LWA_READINESS_CHECK_PATH=/ready

# ---- the default target: the HTTP server ----
FROM runtime AS server
