"""AWS Lambda: the same ASGI app behind Mangum, which turns a Lambda event into an HTTP request and back.

The served models are set up once per execution environment (at init, outside the handler: the
default model loaded, the others on their first request, as ``pocketlm serve`` does with the same
``POCKETLM_*`` settings), so only a cold start pays for the default; every later invocation of that
environment reuses what is loaded. Lambda sends
an environment one request at a time, hence one slot is enough there (``POCKETLM_SLOTS=1`` in
``template.yaml``). Mangum buffers the response (6 MB at most): streams arrive whole. For
server-sent events as they are made, the template's second function runs ``pocketlm serve``
behind the Lambda Web Adapter in RESPONSE_STREAM mode instead.

The function's entry point is ``pocketlm.deploy.lambda_handler.handler``.
"""

from __future__ import annotations

import logging
import time

from mangum import Mangum

from pocketlm.server import ServeSettings, build_app, configure_logging
from pocketlm.service import ServedModels

log = logging.getLogger("pocketlm.lambda")


def create_handler(settings: ServeSettings) -> Mangum:
    """Load the default model now and return the Lambda handler ``handler(event, context)`` serving the app."""
    started = time.perf_counter()
    models = ServedModels.from_settings(settings).start()
    app = build_app(models, settings)
    log.info("loaded %s in %.2f s", models.default, time.perf_counter() - started)
    # The app has no lifespan work (the engine is already running); API Gateway v2 and Function URL
    # events carry no stage prefix in rawPath, so no base path either.
    return Mangum(app, lifespan="off")


def handler_from_env() -> Mangum:
    """The handler configured by ``POCKETLM_*`` variables, as ``pocketlm serve`` would be."""
    from pocketlm.deploy.settings import settings_from_env

    settings = settings_from_env()
    configure_logging(settings.log_format)
    return create_handler(settings)
