"""``POST /v1/inspect/{tokens,positions,attention,next}``: the four views over HTTP.

A request's ``model`` names one of the served models (none: the default). Its engine may be
llama.cpp, which cannot hand back attention weights or hidden states, so the routes open the
model a second time, on torch with eager attention, the first time a view asks for it (once
per model, whether its engine is loaded or not; cached by ``inspection.loading``). Loading
and every forward pass run in a worker thread: the event loop keeps serving generation meanwhile.
"""

from __future__ import annotations

import asyncio

from fastapi import APIRouter, Depends, FastAPI, Request, Response
from fastapi.responses import HTMLResponse

from pocketlm.errors import InvalidParameter, ModelNotFound
from pocketlm.inspection import pictures
from pocketlm.inspection.loading import BERT, load, subject_for_served
from pocketlm.inspection.schemas import (
    AttentionRequest,
    AttentionResponse,
    NextRequest,
    NextResponse,
    PositionsRequest,
    PositionsResponse,
    TokensRequest,
    TokensResponse,
    attention_body,
    next_body,
    positions_body,
    tokens_body,
)
from pocketlm.inspection.tokens import BERT_WORDPIECE, GPT2, check_text
from pocketlm.service import AppState, app_state
from pocketlm.service.auth import require_api_key

router = APIRouter(prefix="/v1/inspect", tags=["inspect"])
PNG = {200: {"content": {"image/png": {}}, "description": "With `format: png`: the picture."}}
NOT_FOUND = {404: {"description": "A model neither served nor the BERT encoder."}}


def install(app: FastAPI, state: AppState) -> None:
    """The four views over HTTP, behind the API key like the rest of the API."""
    app.include_router(router, dependencies=[Depends(require_api_key)])


def _served(request: Request, model: str | None = None):
    """The inspection model of a served model (None or "": the default)."""
    state = app_state(request)
    return subject_for_served(state.models.find(model).model, state.settings.model_options)


def _subject(request: Request, model: str | None):
    """The model a request looks inside: a served one, or the BERT encoder. Nothing else: a client names no files."""
    if model == BERT:
        return load(BERT)
    models = app_state(request).models
    if model and model not in models.models:
        raise ModelNotFound(
            f"model '{model}': this server looks inside the models it serves "
            f"({', '.join(map(repr, models.models))}) or the BERT encoder '{BERT}'"
        )
    return _served(request, model)


def _png(data: bytes) -> Response:
    return Response(content=data, media_type="image/png")


@router.post(
    "/tokens",
    response_model=TokensResponse,
    responses=PNG,
    summary="Token ids, pieces and byte spans of a text, for one or several tokenizers",
)
async def tokens(body: TokensRequest, request: Request):
    from pocketlm.inspection.tokens import compare, named_tokenizer

    check_text(body.text)
    served = app_state(request).models.models
    names = body.tokenizers or [app_state(request).models.default]
    for name in names:
        if name not in (*served, GPT2, BERT_WORDPIECE):
            choices = ", ".join(f"'{n}'" for n in (*served, GPT2, BERT_WORDPIECE))
            raise InvalidParameter("tokenizers", f"unknown tokenizer {name!r}: use {choices}")
    if len(set(names)) != len(names):
        raise InvalidParameter("tokenizers", "each tokenizer may be named once")

    def run():
        found = {n: _served(request, n).tokenizer if n in served else named_tokenizer(n) for n in names}
        result = compare(body.text, found)
        return pictures.tokens_png(result) if body.format == "png" else tokens_body(body.text, result)

    result = await asyncio.to_thread(run)
    return _png(result) if body.format == "png" else result


@router.post(
    "/positions",
    response_model=PositionsResponse,
    responses=PNG | NOT_FOUND,
    summary="The sinusoidal encoding of 'Attention Is All You Need' beside the model's own position scheme",
)
async def positions(body: PositionsRequest, request: Request):
    from pocketlm.inspection.positions import model_positions, sinusoidal

    def run():
        subject = _subject(request, body.model)
        pe, scheme = sinusoidal(body.positions, body.dim), model_positions(subject, body.positions)
        return pictures.positions_png(pe, scheme) if body.format == "png" else positions_body(subject.name, pe, scheme)

    result = await asyncio.to_thread(run)
    return _png(result) if body.format == "png" else result


@router.post(
    "/attention",
    response_model=AttentionResponse,
    responses={
        200: {
            "content": {"image/png": {}, "text/html": {}},
            "description": "With `format: png` the picture, with `html` bertviz's page.",
        }
    }
    | NOT_FOUND,
    summary="Attention weights of every layer and head for a text",
)
async def attention(body: AttentionRequest, request: Request):
    from pocketlm.inspection.attention import attention as run_attention
    from pocketlm.inspection.interactive import bertviz_html

    check_text(body.text)

    def run():
        subject = _subject(request, body.model)
        amap = run_attention(subject, body.text, layers=body.layers, heads=body.heads)
        if body.format == "html":
            return bertviz_html(amap, body.view)
        if body.format == "png":
            if len(amap.layers) == 1 and len(amap.heads) == 1:
                return pictures.attention_head_png(amap, amap.layers[0], amap.heads[0])
            return pictures.attention_grid_png(amap)
        return attention_body(subject.name, amap)

    result = await asyncio.to_thread(run)
    if body.format == "html":
        return HTMLResponse(result)
    return _png(result) if body.format == "png" else result


@router.post(
    "/next",
    response_model=NextResponse,
    responses=PNG | NOT_FOUND,
    summary="The next-token distribution before and after the sampling parameters, and the logit lens",
)
async def next_token(body: NextRequest, request: Request):
    from pocketlm.inspection.nexttoken import next_token as run_next

    params = body.sampling_params().validated()  # before any model load: a bad value costs nothing
    check_text(body.prompt, "prompt")

    if body.model:
        app_state(request).models.find(body.model)  # a 404 before any model loads

    def run():
        subject = _served(request, body.model)
        result = run_next(subject, body.prompt, params, top=body.top, lens_top=body.lens_top)
        return pictures.next_png(result) if body.format == "png" else next_body(subject.name, result)

    result = await asyncio.to_thread(run)
    return _png(result) if body.format == "png" else result
