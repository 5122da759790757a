# One lean image for every part of the live path; docker-compose.yml picks the part with `command:`.
# The base install only (no torch: the checkpoint, its ONNX graphs and the ONNX text tower ship in the package
# and run on onnxruntime); training (`pip install '.[train]'`) belongs on a workstation, not in this image.
#
# Two stages: `build` makes a virtual environment from wheels (pure-Python sdists build without a compiler;
# nothing here needs one), `runtime` copies only that environment onto a fresh base: no pip cache, no build
# tools, no source tree. Base image: an exact Python release on an exact Debian release; pin its digest too
# (`docker buildx imagetools inspect python:3.11.14-slim-bookworm`) where the registry is reachable.
ARG PYTHON_IMAGE=python:3.11.14-slim-bookworm

FROM ${PYTHON_IMAGE} AS build
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_PREFER_BINARY=1
# LightGBM (YASA's stagers, psg/features/yasa_prior.py) needs the OpenMP runtime, which the slim base lacks:
# installed here, and its libgomp.so.1 copied into the venv, found there through LD_LIBRARY_PATH
RUN python -m venv /opt/sleeplm \
    && apt-get update && apt-get install -y --no-install-recommends libgomp1 && rm -rf /var/lib/apt/lists/* \
    && cp "$(dpkg -L libgomp1 | grep '/libgomp\.so\.1$')" /opt/sleeplm/lib/
WORKDIR /src
COPY pyproject.toml README.md ./
COPY psg psg
COPY sleeplm sleeplm
COPY plumbing plumbing
COPY operations operations
COPY device_bridges device_bridges
COPY stream_agents stream_agents
COPY model_runtime model_runtime
COPY store store
COPY dashboards dashboards
# the base install plus the PostgreSQL driver the compose deployment's store uses; never the train extra
RUN /opt/sleeplm/bin/pip install '.[postgres]' \
    && /opt/sleeplm/bin/python -c "import importlib.util as u, sys; sys.exit(any(u.find_spec(m) for m in ('torch', 'transformers', 'sentence_transformers', 'yasa', 'mne', 'numba')))" \
    && LD_LIBRARY_PATH=/opt/sleeplm/lib /opt/sleeplm/bin/python -c "import lightgbm" \
    && /opt/sleeplm/bin/pip uninstall -y -q pip setuptools

FROM ${PYTHON_IMAGE} AS runtime
RUN useradd --create-home --uid 10001 --shell /usr/sbin/nologin sleeplm \
    && mkdir -p /data /tokens && chown sleeplm:sleeplm /data /tokens
COPY --from=build /opt/sleeplm /opt/sleeplm
ENV PATH=/opt/sleeplm/bin:$PATH PYTHONUNBUFFERED=1 HF_HUB_OFFLINE=1 LD_LIBRARY_PATH=/opt/sleeplm/lib \
    LSLAPICFG=/opt/sleeplm/lib/python3.11/site-packages/device_bridges/lsl_api.cfg
USER sleeplm
WORKDIR /home/sleeplm
ENTRYPOINT ["sleeplm"]
