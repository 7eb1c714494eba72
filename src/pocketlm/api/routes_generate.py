"""The seeds' ``POST /generate`` and Hugging Face TGI's routes (``/``, ``/generate``, ``/generate_stream``).

``huggingface_hub.InferenceClient(base_url).text_generation(...)`` posts
``{"inputs", "parameters", "stream"}`` to the base URL itself, so ``POST /``
speaks TGI too (as TGI's own server does).
"""

from __future__ import annotations

from dataclasses import replace

from fastapi import APIRouter, Request

from pocketlm.api import render
from pocketlm.api.generation import collect, prompt_ids, start, with_max_length
from pocketlm.api.schemas import GenerateRequest, GenerateResponse, TGIDetails, TGIRequest, TGIResponse
from pocketlm.api.streaming import tgi_stream

router = APIRouter(tags=["generate"])

DEFAULT_MAX_NEW_TOKENS = 50  # the seeds' GPT-2 text-generation pipeline stops at 50 tokens

_SSE = {200: {"content": {"text/event-stream": {}}, "description": "Server-sent events when streaming."}}


@router.post(
    "/generate", response_model=GenerateResponse | TGIResponse, response_model_exclude_none=True, responses=_SSE,
    summary="Continue a prompt (the seeds' contract; also TGI's body)",
)
async def generate(body: GenerateRequest, request: Request):
    """`{"prompt": "..."}` -> `{"response": "<prompt + continuation>"}`; `{"inputs": ...}` -> `{"generated_text": ...}`."""
    if body.is_tgi:
        return await _tgi(request, body.tgi())
    params, aliases = body.sampling_params()
    ids = prompt_ids(request, body.prompt)
    if body.max_length is not None:
        aliases["max_new_tokens"] = "max_length"
    elif params.max_new_tokens is None:
        params = replace(params, max_new_tokens=DEFAULT_MAX_NEW_TOKENS)
    params = with_max_length(params, body.max_length, len(ids))
    job = start(request, ids, params, aliases)
    samples, _ = await collect(request, job)
    texts = [body.prompt + sample.text for sample in samples]
    if body.num_return_sequences is not None:
        return GenerateResponse(responses=texts)
    return GenerateResponse(response=texts[0])


@router.post("/generate_stream", response_model=None, responses=_SSE, summary="TGI: stream tokens as server-sent events")
async def generate_stream(body: TGIRequest, request: Request):
    return await _tgi(request, body.model_copy(update={"stream": True}))


@router.post("/", response_model=TGIResponse, response_model_exclude_none=True, responses=_SSE, summary="TGI: generate or stream")
async def tgi_root(body: TGIRequest, request: Request):
    return await _tgi(request, body)


async def _tgi(request: Request, body: TGIRequest):
    params, aliases = body.sampling_params()
    ids = prompt_ids(request, body.inputs, param="inputs", truncate=body.parameters.truncate)
    aliases["prompt"] = "inputs"
    job = start(request, ids, params, aliases)
    full_text = bool(body.parameters.return_full_text)
    if body.stream:
        return tgi_stream(request, job, prompt=body.inputs, full_text=full_text, eos_id=request.app.state.eos_id)
    samples, usage = await collect(request, job)
    sample = samples[0]
    details = None
    if body.parameters.details:
        details = TGIDetails(
            finish_reason=render.tgi_finish_reason(sample), generated_tokens=usage.completion_tokens,
            seed=params.seed, input_length=len(ids), tokens=render.tgi_tokens(sample),
        )
    return TGIResponse(generated_text=(body.inputs if full_text else "") + sample.text, details=details)
