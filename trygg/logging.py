"""structlog set-up: key=value lines for people, JSON lines for log shippers (``TRYGG_LOG_JSON``)."""

import logging
import sys

import structlog


def configure_logging(level: str = "INFO", json: bool = False) -> None:
    lvl = logging.getLevelNamesMapping().get(level.upper(), logging.INFO)
    logging.basicConfig(level=lvl, stream=sys.stderr, format="%(message)s")
    # logfmt, not structlog's ConsoleRenderer: the console renderer's padding and sorting cost enough per
    # line to show in the alarm path's tail latency (docs/benchmarks.md).
    renderer: structlog.types.Processor = (
        structlog.processors.JSONRenderer()
        if json
        else structlog.processors.LogfmtRenderer(key_order=["timestamp", "level", "event"], drop_missing=True)
    )
    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            structlog.processors.format_exc_info,
            renderer,
        ],
        wrapper_class=structlog.make_filtering_bound_logger(lvl),
        logger_factory=structlog.WriteLoggerFactory(sys.stderr),
        cache_logger_on_first_use=True,
    )
    # gmqtt logs every reconnect attempt at INFO/ERROR with stack traces; we log connection state ourselves.
    logging.getLogger("gmqtt").setLevel(logging.CRITICAL)
    # Per-request lines from the forwarder's HTTP client and Alembic's plugin chatter say nothing to operators.
    for noisy in ("httpx", "httpcore", "alembic", "amqtt", "transitions"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
