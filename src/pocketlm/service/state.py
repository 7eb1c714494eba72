"""The typed state one HTTP service's features share, and the contract by which a feature joins it.

The server (``pocketlm.server.build_app``) makes one ``AppState`` per app and calls each feature's
``install(app, state)`` in turn: the API (text generation), inspection, the web page, the tasks. What
several features read lives here, typed; what only one feature uses it keeps in its own object. So no
feature reads what another wrote into an untyped bag, and none imports another.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field, fields, is_dataclass
from typing import TYPE_CHECKING, Protocol, TypeVar

from starlette.requests import HTTPConnection

from pocketlm.service.settings import Settings

if TYPE_CHECKING:
    from fastapi import FastAPI

    from pocketlm.service.served import ServedModels

T = TypeVar("T")


@dataclass(frozen=True)
class ListedModel:
    """A model a feature serves beside the text model, as ``GET /v1/models`` lists it."""

    id: str
    task: str  # translation, text-to-speech, image-to-text, ...


@dataclass
class AppState:
    models: ServedModels  # the text models served, each loaded into its own engine on demand
    settings: Settings  # the server's: these fields, plus each feature's own settings (``part``)
    started: int = field(default_factory=lambda: int(time.time()))  # what /v1/models says each model was created
    draining: bool = False  # set on SIGTERM: /ready turns 503, the engine finishes what it runs
    # Each feature that serves models beside the text model adds a function listing them (asked per request:
    # a model may load or become available while the server runs).
    listings: list[Callable[[], list[ListedModel]]] = field(default_factory=list)
    # Each feature may rewrite the OpenAPI document where only it knows a constraint (``hook(schema)``).
    openapi_hooks: list[Callable[[dict], None]] = field(default_factory=list)
    # Routes a feature leaves out because it is not configured, and how to turn them on: the 404 says so.
    unserved: dict[str, str] = field(default_factory=dict)

    def part(self, kind: type[T]) -> T:
        """A feature's own settings (a dataclass the server's settings hold), or its defaults when they hold none
        (an app built with the service's settings alone)."""
        for f in fields(self.settings):
            value = getattr(self.settings, f.name)
            if is_dataclass(value) and isinstance(value, kind):
                return value
        return kind()

    def listed_models(self) -> list[ListedModel]:
        return [model for listing in self.listings for model in listing()]


class Feature(Protocol):
    """What the server needs of a feature: a module (or object) with ``install``, which adds its routes,
    middleware and hooks to the app. Called once per app, in the server's order, before the app serves."""

    def install(self, app: FastAPI, state: AppState) -> None: ...


def attach(app: FastAPI, state: AppState) -> None:
    app.state.pocketlm = state


def app_state(where: FastAPI | HTTPConnection) -> AppState:
    """The state of the app serving a request (or of the app itself)."""
    app = where.app if isinstance(where, HTTPConnection) else where
    return app.state.pocketlm
