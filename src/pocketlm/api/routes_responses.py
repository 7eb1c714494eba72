"""OpenAI's Responses API: ``POST /v1/responses``, stateless, on the same engine path as chat."""

from __future__ import annotations

from fastapi import APIRouter, Request

from pocketlm.api.generation import acquire, collect, compile_grammars, start
from pocketlm.api.streaming import responses_stream
from pocketlm.api.wire.responses import Response, ResponsesRequest, output_items

router = APIRouter(prefix="/v1", tags=["openai"])

_SSE = {
    200: {
        "content": {"text/event-stream": {}},
        "description": "Typed server-sent events when `stream` is true: response.created, response.in_progress, "
        "response.output_item.added, response.output_text.delta, response.function_call_arguments.delta, ..., "
        "response.completed (or response.incomplete at the token limit).",
    }
}


@router.post("/responses", response_model=Response, responses=_SSE)
async def responses(body: ResponsesRequest, request: Request):
    """A response to ``input`` (text or items), with ``instructions``; ``text.format`` constrains the answer,
    ``tools`` offers functions. Nothing is stored: ``store`` is ignored and ``previous_response_id`` refused."""
    messages, params, tools, aliases = body.engine_request()
    lease = await acquire(request, body.model)
    await compile_grammars(lease, params, tools)
    job = start(lease, params, aliases, messages=messages, tools=tools)
    response = Response.start(body, job.model)
    if body.stream:
        return responses_stream(request, job, response, tools is not None)
    completion = await collect(request, job)
    sample = completion.samples[0]
    response.output = output_items(sample.text, sample.finish_reason, tools is not None)
    response.finish(sample.finish_reason, completion.usage)
    return response
