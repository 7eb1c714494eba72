"""The seeds' ``POST /generate`` and Hugging Face TGI's routes (``/``, ``/generate``, ``/generate_stream``).

``huggingface_hub.InferenceClient(base_url).text_generation(...)`` posts
``{"inputs", "parameters", "stream"}`` to the base URL itself, so ``POST /``
speaks TGI too (as TGI's own server does). TGI's body names no model: ``/generate_stream`` and ``/`` get the
server's default model (the first ``--model``); ``/generate`` takes an optional ``model`` in either shape.
"""

from __future__ import annotations

from fastapi import APIRouter, Request

from pocketlm.api.generation import acquire, collect, released_on_error, start
from pocketlm.api.streaming import tgi_stream
from pocketlm.api.wire import tgi
from pocketlm.api.wire.seeds import GenerateRequest, GenerateResponse
from pocketlm.api.wire.tgi import TGIDetails, TGIRequest, TGIResponse, TGIToken

router = APIRouter(tags=["generate"])

_SSE = {200: {"content": {"text/event-stream": {}}, "description": "Server-sent events when streaming."}}


@router.post(
    "/generate",
    response_model=GenerateResponse | TGIResponse,
    response_model_exclude_none=True,
    responses={**_SSE, 404: {"description": "The model asked for is not served here."}},
    summary="Continue a prompt (the seeds' contract; also TGI's body)",
)
async def generate(body: GenerateRequest, request: Request):
    """`{"prompt": "..."}` -> `{"response": "<prompt + continuation>"}`; \
`{"inputs": ...}` -> `{"generated_text": ...}`."""
    if body.is_tgi:
        return await _tgi(request, body.tgi(), body.model)
    lease = await acquire(request, body.model)
    with released_on_error(lease):
        prompt, params, aliases = body.engine_request(lease.engine.tokenize, lease.engine.config.limits)
    completion = await collect(request, start(lease, params, aliases, prompt=prompt))
    texts = [body.prompt + sample.text for sample in completion.samples]
    if body.num_return_sequences is not None:
        return GenerateResponse(responses=texts)
    return GenerateResponse(response=texts[0])


@router.post(
    "/generate_stream", response_model=None, responses=_SSE, summary="TGI: stream tokens as server-sent events"
)
async def generate_stream(body: TGIRequest, request: Request):
    return await _tgi(request, body.model_copy(update={"stream": True}))


@router.post(
    "/", response_model=TGIResponse, response_model_exclude_none=True, responses=_SSE, summary="TGI: generate or stream"
)
async def tgi_root(body: TGIRequest, request: Request):
    return await _tgi(request, body)


async def _tgi(request: Request, body: TGIRequest, model: str | None = None):
    lease = await acquire(request, model)
    engine = lease.engine
    with released_on_error(lease):
        prompt, params, aliases = body.engine_request(engine.tokenize, engine.config.limits)
    job = start(lease, params, aliases, prompt=prompt)
    full_text = bool(body.parameters.return_full_text)
    if body.stream:
        return tgi_stream(request, job, prompt=body.inputs, full_text=full_text, eos_id=_eos_id(engine))
    completion = await collect(request, job)
    sample = completion.samples[0]
    details = None
    if body.parameters.details:
        details = TGIDetails(
            finish_reason=tgi.finish_reason(sample),
            generated_tokens=completion.usage.completion_tokens,
            seed=params.seed,
            input_length=len(job.prompt_ids),
            tokens=TGIToken.of_sample(sample),
        )
    return TGIResponse(generated_text=(body.inputs if full_text else "") + sample.text, details=details)


def _eos_id(engine) -> int:
    """The end-of-sequence token's id, for TGI's last stream event when nothing else was generated."""
    ids = engine.tokenize(engine.info.eos_token, add_special=True) if engine.info.eos_token else []
    return ids[-1] if ids else 0
