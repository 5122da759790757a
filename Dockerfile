# One image for every part of the live path; docker-compose.yml picks the part with `command:`.
FROM python:3.11-slim
WORKDIR /app
ENV PIP_NO_CACHE_DIR=1 PYTHONUNBUFFERED=1 HF_HUB_OFFLINE=1
COPY pyproject.toml README.md ./
COPY psg psg
COPY sleeplm sleeplm
COPY services services
COPY device_bridges device_bridges
COPY stream_agents stream_agents
COPY model_runtime model_runtime
COPY store store
COPY dashboards dashboards
RUN pip install '.[postgres]'
RUN useradd --create-home sleeplm && mkdir -p /data /tokens && chown sleeplm /data /tokens
USER sleeplm
ENV LSLAPICFG=/app/device_bridges/lsl_api.cfg
ENTRYPOINT ["sleeplm"]
