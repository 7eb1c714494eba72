"""OpenAI-compatible routes: ``/v1/completions``, ``/v1/chat/completions``, ``/v1/models``.

A request's ``model`` picks one of the served models (none: the default); ``/v1/models`` lists them all,
with pocketlm's own fields beside OpenAI's (loaded or not, kind, size, context, estimated RAM), then the
models the other features serve (translation, speech, captioning).
"""

from __future__ import annotations

import time
import uuid

from fastapi import APIRouter, Request

from pocketlm.api.generation import Job, acquire, collect, collect_all, compile_grammars, start
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
from pocketlm.service import AppState, Lease, ServedModel, app_state

router = APIRouter(prefix="/v1", tags=["openai"])

_SSE = {200: {"content": {"text/event-stream": {}}, "description": "Server-sent events when `stream` is true."}}


@router.post("/completions", response_model=CompletionResponse, responses=_SSE)
async def completions(body: CompletionRequest, request: Request):
    """One prompt or several (each a request of the engine; prompt k's choices at k*n..k*n+n-1). With echo and
    logprobs, the prompt's tokens come with their log-probabilities (the first null), from the pass that reads
    the prompt; max_tokens 0 then scores a text without generating (what lm-evaluation-harness asks)."""
    prompts, params, aliases = body.engine_request()
    lease = await acquire(request, body.model)
    await compile_grammars(lease, params)
    jobs = _start_all(lease, params, aliases, prompts)
    model = lease.model
    echoes = [_echo(p, job) if body.echo else "" for p, job in zip(prompts, jobs)]
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


def _start_all(lease: Lease, params, aliases, prompts: list) -> list[Job]:
    """Submit every prompt, each job holding its own share of the lease; if one is refused, none runs."""
    leases = [lease, *(lease.share() for _ in prompts[1:])]
    jobs: list[Job] = []
    try:
        for prompt, held in zip(prompts, leases):
            jobs.append(start(held, params, aliases, prompt=prompt))
    except Exception:
        for job in jobs:
            job.close()
        for held in leases[len(jobs) + 1 :]:  # start gave back the refused prompt's own
            held.release()
        raise
    return jobs


def _echo(prompt: str | list[int], job: Job) -> str:
    """The prompt as sent; token ids are shown as the text they stand for."""
    return prompt if isinstance(prompt, str) else job.lease.engine.detokenize(job.prompt_ids)


@router.post("/chat/completions", response_model=ChatCompletionResponse, responses=_SSE)
async def chat_completions(body: ChatCompletionRequest, request: Request):
    """Messages are rendered with the model's own chat template (the engine's chat path, which also stops a model
    without one at the transcript's next user turn). Roles: system, developer (= system), user, assistant, tool."""
    messages, params, tools, aliases = body.engine_request()
    lease = await acquire(request, body.model)
    await compile_grammars(lease, params, tools)
    job = start(lease, params, aliases, messages=messages, tools=tools)
    model = job.model
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
