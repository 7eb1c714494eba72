"""The web playground: one static page at ``GET /`` that speaks the server's own HTTP API.

Everything the page needs ships in ``static/`` (plain ES modules and one
stylesheet, no build step, no CDN), so it works on a machine with no internet.
The page is public like ``/docs``: it holds no data, and asks for an API key
only when the API answers 401. ``POST /`` stays Hugging Face TGI's route: a
route matches on path *and* method, so the two never meet.
"""

from __future__ import annotations

import importlib.resources

from fastapi import FastAPI
from fastapi.responses import FileResponse, HTMLResponse
from fastapi.staticfiles import StaticFiles

from pocketlm.service import AppState

ASSETS = "/web"
STATIC = importlib.resources.files("pocketlm.web") / "static"


def install(app: FastAPI, state: AppState) -> None:
    """Serve the page at ``GET /`` and its modules under ``/web``."""
    app.mount(ASSETS, StaticFiles(directory=str(STATIC)), name="web")

    # In the OpenAPI document too: it says what GET / answers (a page, never a key asked for), beside TGI's POST /.
    @app.get(
        "/",
        response_class=HTMLResponse,
        summary="The web playground (an HTML page; no key needed)",
        responses={200: {"description": "The page; its modules are under /web."}},
    )
    async def playground():
        # no-cache: the browser revalidates (ETag), so an upgraded server never runs a stale page
        return FileResponse(STATIC / "index.html", headers={"Cache-Control": "no-cache"})
