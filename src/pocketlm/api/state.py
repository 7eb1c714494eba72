"""What the API feature keeps per app, beside the service's shared state (``pocketlm.service.AppState``)."""

from __future__ import annotations

from dataclasses import dataclass

from starlette.requests import HTTPConnection

from pocketlm.api.metrics import Metrics


@dataclass(frozen=True)
class ApiState:
    """What only this feature keeps per app."""

    metrics: Metrics


def api_state(request: HTTPConnection) -> ApiState:
    return request.app.state.api
