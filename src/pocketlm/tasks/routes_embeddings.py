"""Text to vectors with the server's encoder (``--embedding-model``), in two clients' shapes: OpenAI's
``POST /v1/embeddings``, and Ollama's ``POST /api/embed`` (with its older ``/api/embeddings``).

One encoder and one way to run it (``_vectors``) behind both: the same text gets the same vector whichever API
asks. Ollama's routes answer errors in Ollama's shape, ``{"error": "..."}``, as the rest of its API here does.
"""

from __future__ import annotations

import asyncio
import time

import numpy as np
from fastapi import APIRouter, Request

from pocketlm.errors import PocketLMError
from pocketlm.service.ollama import OLLAMA_PREFIX, JsonBody
from pocketlm.tasks import embeddings
from pocketlm.tasks.schemas import (
    Embedding,
    EmbeddingsRequest,
    EmbeddingsResponse,
    EmbeddingsUsage,
    OllamaEmbeddingsRequest,
    OllamaEmbeddingsResponse,
    OllamaEmbedRequest,
    OllamaEmbedResponse,
)
from pocketlm.tasks.state import tasks_state

router = APIRouter(prefix="/v1", tags=["embeddings (OpenAI)"])
ollama = APIRouter(prefix=OLLAMA_PREFIX, tags=["embeddings (Ollama)"], route_class=JsonBody)

_NOT_SERVED = {
    404: {"description": "Another model than the server's embeddings model (--embedding-model), or none can load."}
}


def document(schema: dict, served: str) -> None:
    """The OpenAPI document's bounds that depend on the server's encoder: its names, its vocabulary, the sizes its
    vectors may have. Left general when the encoder is not on this machine (its route says why)."""
    try:
        card = embeddings.card(served)
    except PocketLMError:
        return
    shapes = schema["components"]["schemas"]
    fields = shapes["EmbeddingsRequest"]["properties"]
    for branch in fields["input"]["anyOf"]:
        ids = branch.get("items", {})
        ids = ids.get("items", ids)
        if ids.get("type") == "integer":
            ids["maximum"] = card.vocab_size - 1
    names = list(dict.fromkeys([served, card.name, ""]))
    fields["model"]["anyOf"] = [{"type": "string", "enum": names}, {"type": "null"}]
    low = 1 if card.matryoshka else card.dimensions
    fields["dimensions"]["anyOf"][0].update(minimum=low, maximum=card.dimensions)
    ollama_names = list(dict.fromkeys([*names, *(f"{n}:latest" for n in names if n)]))
    for shape in ("OllamaEmbedRequest", "OllamaEmbeddingsRequest"):
        shapes[shape]["properties"]["model"].update(enum=ollama_names)
    shapes["OllamaEmbedRequest"]["properties"]["dimensions"]["anyOf"][0].update(minimum=low, maximum=card.dimensions)


async def _vectors(
    served: str,
    inputs: list[str] | list[list[int]],
    dimensions: int | None,
    *,
    truncate: bool = False,
    param: str = "input",
) -> tuple[embeddings.Encoder, list[list[int]], np.ndarray, float]:
    """The encoder, the ids it read, one vector per input, and the seconds spent loading it; in a worker thread,
    so the event loop keeps serving while the encoder loads or works."""

    def run():
        started = time.monotonic()
        encoder = embeddings.served_encoder(served)
        loading = time.monotonic() - started
        embeddings.check_dimensions(dimensions, encoder)
        rows = encoder.token_ids(inputs, param, truncate) if inputs else []
        vectors = embeddings.shorten(encoder.embed(rows), dimensions) if rows else np.zeros((0, 0))
        return encoder, rows, vectors, loading

    return await asyncio.to_thread(run)


@router.post(
    "/embeddings",
    response_model=EmbeddingsResponse,
    summary="Text to vectors (OpenAI's API)",
    responses=_NOT_SERVED,
)
async def create_embeddings(body: EmbeddingsRequest, request: Request):
    served = tasks_state(request).embedding_model
    embeddings.check_model(body.model, served)
    inputs = embeddings.check_inputs(body.input)
    encoder, rows, vectors, _ = await _vectors(served, inputs, body.dimensions)
    n_tokens = sum(len(r) for r in rows)
    return EmbeddingsResponse(
        data=[
            Embedding(index=i, embedding=embeddings.encoded(vector, body.encoding_format))
            for i, vector in enumerate(vectors)
        ],
        model=encoder.name,
        usage=EmbeddingsUsage(prompt_tokens=n_tokens, total_tokens=n_tokens),
    )


@ollama.post(
    "/embed",
    response_model=OllamaEmbedResponse,
    summary="Text to vectors (Ollama's API)",
    responses=_NOT_SERVED,
)
async def ollama_embed(body: OllamaEmbedRequest, request: Request):
    """One vector per input; an input longer than the model reads is cut to its start unless `truncate` is false.
    No input: the encoder only loads (no vectors)."""
    arrived = time.monotonic()
    served = tasks_state(request).embedding_model
    body.checked_model(served)
    inputs = [] if body.input in ("", []) else embeddings.check_inputs(body.input)
    encoder, rows, vectors, loading = await _vectors(served, inputs, body.dimensions, truncate=body.truncate)
    return OllamaEmbedResponse(
        model=encoder.name,
        embeddings=vectors.tolist(),
        total_duration=_ns(time.monotonic() - arrived),
        load_duration=_ns(loading),
        prompt_eval_count=sum(len(r) for r in rows),
    )


@ollama.post(
    "/embeddings",
    response_model=OllamaEmbeddingsResponse,
    summary="A text to its vector (Ollama's older API; /api/embed supersedes it)",
    responses=_NOT_SERVED,
)
async def ollama_embeddings(body: OllamaEmbeddingsRequest, request: Request):
    """The prompt's vector; an empty prompt only loads the encoder. Longer than the model reads: refused."""
    served = tasks_state(request).embedding_model
    body.checked_model(served)
    inputs = embeddings.check_inputs(body.prompt, param="prompt") if body.prompt else []
    _, _, vectors, _ = await _vectors(served, inputs, None, param="prompt")
    return OllamaEmbeddingsResponse(embedding=vectors[0].tolist() if inputs else [])


def _ns(seconds: float) -> int:
    return max(0, int(seconds * 1e9))
