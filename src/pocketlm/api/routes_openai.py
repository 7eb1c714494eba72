"""OpenAI-compatible routes: ``/v1/completions``, ``/v1/chat/completions``, ``/v1/models``."""

from __future__ import annotations

import time
import uuid

from fastapi import APIRouter, Request

from pocketlm.api.generation import Job, collect, collect_all, compile_grammars, start
from pocketlm.api.streaming import chat_stream, completion_stream
from pocketlm.api.wire.openai import (
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
    assistant_message,
)
from pocketlm.engine import Usage
from pocketlm.errors import ModelNotFound
from pocketlm.service import app_state

router = APIRouter(prefix="/v1", tags=["openai"])

_SSE = {200: {"content": {"text/event-stream": {}}, "description": "Server-sent events when `stream` is true."}}


def served_model(request: Request, asked: str | None) -> str:
    """The served model's id; a request naming another model is a 404, as with OpenAI."""
    name = app_state(request).engine.info.name
    if asked is not None and asked != name:
        raise ModelNotFound(f"model '{asked}' is not served here; this server serves '{name}' (see GET /v1/models)")
    return name


@router.post("/completions", response_model=CompletionResponse, responses=_SSE)
async def completions(body: CompletionRequest, request: Request):
    """One prompt or several (each a request of the engine; prompt k's choices at k*n..k*n+n-1). With echo and
    logprobs, the prompt's tokens come with their log-probabilities (the first null), from the pass that reads
    the prompt; max_tokens 0 then scores a text without generating (what lm-evaluation-harness asks)."""
    model = served_model(request, body.model)
    prompts, params, aliases = body.engine_request()
    await compile_grammars(request, params)
    jobs = _start_all(request, params, aliases, prompts)
    echoes = [_echo(request, p, job) if body.echo else "" for p, job in zip(prompts, jobs)]
    if body.stream:
        return completion_stream(request, jobs, model, body.include_usage, echoes)
    completions = await collect_all(request, jobs)
    choices = [
        CompletionChoice(
            index=k * params.n + s.index,
            text=echo + s.text,
            finish_reason=s.finish_reason,
            logprobs=(
                CompletionLogprobs.of([*(c.prompt_logprobs or []), *s.logprobs], 0 if c.prompt_logprobs else len(echo))
                if params.logprobs is not None
                else None
            ),
        )
        for k, (c, echo) in enumerate(zip(completions, echoes))
        for s in c.samples
    ]
    return CompletionResponse(
        id=f"cmpl-{uuid.uuid4().hex}",
        created=int(time.time()),
        model=model,
        choices=choices,
        usage=UsageInfo.of(Usage.summed([c.usage for c in completions])),
    )


def _start_all(request: Request, params, aliases, prompts: list) -> list[Job]:
    """Submit every prompt; if one is refused, none runs."""
    jobs: list[Job] = []
    try:
        for prompt in prompts:
            jobs.append(start(request, params, aliases, prompt=prompt))
    except Exception:
        for job in jobs:
            job.stream.cancel()
        raise
    return jobs


def _echo(request: Request, prompt: str | list[int], job: Job) -> str:
    """The prompt as sent; token ids are shown as the text they stand for."""
    return prompt if isinstance(prompt, str) else app_state(request).engine.detokenize(job.prompt_ids)


@router.post("/chat/completions", response_model=ChatCompletionResponse, responses=_SSE)
async def chat_completions(body: ChatCompletionRequest, request: Request):
    """Messages are rendered with the model's own chat template (the engine's chat path, which also stops a model
    without one at the transcript's next user turn). Roles: system, developer (= system), user, assistant."""
    model = served_model(request, body.model)
    messages, params, tools, aliases = body.engine_request()
    await compile_grammars(request, params, tools)
    job = start(request, params, aliases, messages=messages, tools=tools)
    if body.stream:
        return chat_stream(request, job, model, body.include_usage, tools is not None)
    completion = await collect(request, job)
    choices = []
    for s in completion.samples:
        message, reason = assistant_message(s.text, s.finish_reason, tools is not None)
        logprobs = ChatLogprobs.of(s.logprobs) if params.logprobs is not None else None
        choices.append(ChatChoice(index=s.index, message=message, finish_reason=reason, logprobs=logprobs))
    return ChatCompletionResponse(
        id=f"chatcmpl-{uuid.uuid4().hex}",
        created=int(time.time()),
        model=model,
        choices=choices,
        usage=UsageInfo.of(completion.usage),
    )


@router.get("/models", response_model=ModelList)
async def list_models(request: Request):
    return ModelList(data=[_card(request), *_task_cards(request)])


@router.get("/models/{model_id:path}", response_model=ModelCard)
async def get_model(model_id: str, request: Request):
    for card in _task_cards(request):
        if card.id == model_id:
            return card
    served_model(request, model_id)
    return _card(request)


def _task_cards(request: Request) -> list[ModelCard]:
    """The models other features serve beside the text model (translation, speech, captioning: pocketlm.tasks)."""
    state = app_state(request)
    return [ModelCard(id=m.id, task=m.task, created=state.started) for m in state.listed_models()]


def _card(request: Request) -> ModelCard:
    state = app_state(request)
    return ModelCard(id=state.engine.info.name, created=state.started)
