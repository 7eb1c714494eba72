"""Service routes: liveness, readiness, Prometheus metrics, tokenizer."""

from __future__ import annotations

from fastapi import APIRouter, Request, Response
from fastapi.responses import JSONResponse
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from pocketlm.api.generation import using
from pocketlm.api.state import api_state
from pocketlm.api.wire.service import (
    DetokenizeRequest,
    DetokenizeResponse,
    Health,
    Ready,
    TokenizeRequest,
    TokenizeResponse,
)
from pocketlm.service import app_state

probes = APIRouter(tags=["service"])  # open even when API keys are set
router = APIRouter(tags=["service"])


@probes.get("/health", response_model=Health, summary="Liveness: the process answers")
async def health():
    return Health(status="ok")


@probes.get(
    "/ready",
    response_model=Ready,
    summary="Readiness: the default model loaded at start-up and requests are accepted",
    responses={503: {"model": Ready, "description": "Shutting down (SIGTERM received)."}},
)
async def ready(request: Request):
    state = app_state(request)
    default = state.models.find(None)
    engine = state.models.engine(default.id)  # None once unloaded: it loads again on its next request
    body = Ready(
        status="draining" if state.draining else "ready",
        model=default.id,
        slots=(engine.config if engine else state.settings.engine).slots,
        n_ctx=default.n_ctx,
    )
    return JSONResponse(body.model_dump(), status_code=503 if state.draining else 200)


@router.get(
    "/metrics",
    summary="Prometheus metrics",
    response_class=Response,
    responses={200: {"content": {"text/plain": {}}, "description": "Prometheus text format."}},
)
async def metrics(request: Request):
    return Response(generate_latest(api_state(request).metrics.registry), media_type=CONTENT_TYPE_LATEST)


_NOT_SERVED = {404: {"description": "The model asked for is not served here."}}


@router.post("/tokenize", response_model=TokenizeResponse, responses=_NOT_SERVED)
async def tokenize(body: TokenizeRequest, request: Request):
    async with using(request, body.model) as engine:
        tokens = engine.tokenize(body.text, add_special=body.add_special)
    return TokenizeResponse(tokens=tokens, count=len(tokens))


@router.post("/detokenize", response_model=DetokenizeResponse, responses=_NOT_SERVED)
async def detokenize(body: DetokenizeRequest, request: Request):
    async with using(request, body.model) as engine:
        return DetokenizeResponse(text=engine.detokenize(body.tokens))  # checks the ids
