"""What the API feature keeps per app, beside the service's shared state (``pocketlm.service.AppState``)."""

from __future__ import annotations

from dataclasses import dataclass

from starlette.requests import HTTPConnection

from pocketlm.api.metrics import Metrics


@dataclass(frozen=True)
class ApiState:
    """What only this feature keeps per app."""

    metrics: Metrics
    eos_id: int  # the end-of-sequence token's id, for TGI's last stream event when nothing else was generated


def api_state(request: HTTPConnection) -> ApiState:
    return request.app.state.api
