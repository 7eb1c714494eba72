"""OpenAI-compatible routes: ``/v1/completions``, ``/v1/chat/completions``, ``/v1/models``.

A request's ``model`` picks one of the served models (none: the default); ``/v1/models`` lists them all,
with pocketlm's own fields beside OpenAI's (loaded or not, kind, size, context, estimated RAM), then the
models the other features serve (translation, speech, captioning).
"""

from __future__ import annotations

import time
import uuid

from fastapi import APIRouter, Request

from pocketlm.api.generation import acquire, collect, start
from pocketlm.api.streaming import chat_stream, completion_stream
from pocketlm.api.wire.openai import (
    AssistantMessage,
    ChatChoice,
    ChatCompletionRequest,
    ChatCompletionResponse,
    ChatLogprobs,
    CompletionChoice,
    CompletionLogprobs,
    CompletionRequest,
    CompletionResponse,
    ModelCard,
    ModelList,
    UsageInfo,
)
from pocketlm.service import AppState, ServedModel, app_state

router = APIRouter(prefix="/v1", tags=["openai"])

_SSE = {200: {"content": {"text/event-stream": {}}, "description": "Server-sent events when `stream` is true."}}


@router.post("/completions", response_model=CompletionResponse, responses=_SSE)
async def completions(body: CompletionRequest, request: Request):
    prompt, params, aliases = body.engine_request()
    lease = await acquire(request, body.model)
    job = start(lease, params, aliases, prompt=prompt)
    model = job.model
    echo = ""
    if body.echo:  # the prompt as sent; token ids are shown as the text they stand for
        echo = prompt if isinstance(prompt, str) else lease.engine.detokenize(job.prompt_ids)
    if body.stream:
        return completion_stream(request, job, model, body.include_usage, echo)
    completion = await collect(request, job)
    choices = [
        CompletionChoice(
            index=s.index,
            text=echo + s.text,
            finish_reason=s.finish_reason,
            logprobs=CompletionLogprobs.of(s.logprobs, len(echo)) if params.logprobs is not None else None,
        )
        for s in completion.samples
    ]
    return CompletionResponse(
        id=f"cmpl-{uuid.uuid4().hex}",
        created=int(time.time()),
        model=model,
        choices=choices,
        usage=UsageInfo.of(completion.usage),
    )


@router.post("/chat/completions", response_model=ChatCompletionResponse, responses=_SSE)
async def chat_completions(body: ChatCompletionRequest, request: Request):
    """Messages are rendered with the model's own chat template (the engine's chat path, which also stops a model
    without one at the transcript's next user turn). Roles: system, developer (= system), user, assistant."""
    messages, params, aliases = body.engine_request()
    job = start(await acquire(request, body.model), params, aliases, messages=messages)
    model = job.model
    if body.stream:
        return chat_stream(request, job, model, body.include_usage)
    completion = await collect(request, job)
    choices = [
        ChatChoice(
            index=s.index,
            message=AssistantMessage(content=s.text),
            finish_reason=s.finish_reason,
            logprobs=ChatLogprobs.of(s.logprobs) if params.logprobs is not None else None,
        )
        for s in completion.samples
    ]
    return ChatCompletionResponse(
        id=f"chatcmpl-{uuid.uuid4().hex}",
        created=int(time.time()),
        model=model,
        choices=choices,
        usage=UsageInfo.of(completion.usage),
    )


@router.get("/models", response_model=ModelList)
async def list_models(request: Request):
    state = app_state(request)
    return ModelList(data=[*(_card(state, m) for m in state.models.models.values()), *_task_cards(request)])


@router.get("/models/{model_id:path}", response_model=ModelCard)
async def get_model(model_id: str, request: Request):
    for card in _task_cards(request):
        if card.id == model_id:
            return card
    state = app_state(request)
    return _card(state, state.models.find(model_id))


def _task_cards(request: Request) -> list[ModelCard]:
    """The models other features serve beside the text models (translation, speech, captioning: pocketlm.tasks)."""
    state = app_state(request)
    return [ModelCard(id=m.id, task=m.task, created=state.started) for m in state.listed_models()]


def _card(state: AppState, served: ServedModel) -> ModelCard:
    row = served.row
    return ModelCard(
        id=served.id,
        created=state.started,
        task=row.task,
        state=state.models.state(served.id),
        default=served.id == state.models.default,
        kind=row.kind,
        size=row.file_size,
        parameters=row.n_params,
        quantization=row.quantization,
        n_ctx=served.n_ctx,
        n_ctx_train=row.n_ctx_train,
        ram_estimate=row.ram_estimate,
    )
