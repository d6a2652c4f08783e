# One image for every Trygg service: the command picks it (`trygg gateway`, `trygg receiver`, `trygg sim run`).
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    TRYGG_DATA_DIR=/data \
    TRYGG_SIM_OUTBOX_DIR=/data/sim-outbox \
    TRYGG_LOG_JSON=true

WORKDIR /app
COPY . /app
RUN pip install . \
    && useradd --system --uid 10001 --home-dir /data --create-home trygg \
    && chown trygg /data

USER trygg
WORKDIR /data
VOLUME ["/data"]
EXPOSE 8080 8081

ENTRYPOINT ["trygg"]
CMD ["--help"]
