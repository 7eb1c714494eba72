"""Interactive API docs (/docs, /redoc) that work offline, and the OpenAPI document they read.

FastAPI's own pages load Swagger UI and ReDoc from a CDN, which a machine
without internet cannot reach. The same assets ship in the ``fastapi-offline``
wheel; only its static files are used here, served at /docs-assets.

With API keys, the pages and /openapi.json need a key like every other route
(the document lists every route and limit of this server): ``--public-docs``
opens them. Without keys everything is open anyway.
"""

from __future__ import annotations

import importlib.resources

from fastapi import Depends, FastAPI, Request
from fastapi.openapi.docs import get_redoc_html, get_swagger_ui_html
from fastapi.responses import JSONResponse
from fastapi.staticfiles import StaticFiles

ASSETS = "/docs-assets"
OPENAPI_URL = "/openapi.json"


def install(app: FastAPI, *, keyed: list[Depends]) -> None:
    """Call on an app created with ``docs_url=None, redoc_url=None, openapi_url=None``;
    ``keyed``: the dependencies that check the API key, or [] to serve the docs to anyone."""
    static = importlib.resources.files("fastapi_offline") / "static"
    app.mount(ASSETS, StaticFiles(directory=str(static)), name="docs-assets")

    @app.get(OPENAPI_URL, include_in_schema=False, dependencies=keyed)
    async def openapi(request: Request):
        return JSONResponse(request.app.openapi())

    @app.get("/docs", include_in_schema=False, dependencies=keyed)
    async def swagger_ui():
        return get_swagger_ui_html(
            openapi_url=OPENAPI_URL,
            title=f"{app.title} - API",
            swagger_js_url=f"{ASSETS}/swagger-ui-bundle.js",
            swagger_css_url=f"{ASSETS}/swagger-ui.css",
            swagger_favicon_url=f"{ASSETS}/favicon.png",
        )

    @app.get("/redoc", include_in_schema=False, dependencies=keyed)
    async def redoc():
        return get_redoc_html(
            openapi_url=OPENAPI_URL,
            title=f"{app.title} - API",
            redoc_js_url=f"{ASSETS}/redoc.standalone.js",
            redoc_favicon_url=f"{ASSETS}/favicon.png",
            with_google_fonts=False,
        )
