"""``POST /v1/embeddings`` in OpenAI's shape, with the server's encoder (``--embedding-model``)."""

from __future__ import annotations

import asyncio

from fastapi import APIRouter, Request

from pocketlm.errors import PocketLMError
from pocketlm.tasks import embeddings
from pocketlm.tasks.schemas import Embedding, EmbeddingsRequest, EmbeddingsResponse, EmbeddingsUsage
from pocketlm.tasks.state import tasks_state

router = APIRouter(prefix="/v1", tags=["embeddings (OpenAI)"])


def document(schema: dict, served: str) -> None:
    """The OpenAPI document's bounds that depend on the server's encoder: its names, its vocabulary, the sizes its
    vectors may have. Left general when the encoder is not on this machine (its route says why)."""
    try:
        card = embeddings.card(served)
    except PocketLMError:
        return
    fields = schema["components"]["schemas"]["EmbeddingsRequest"]["properties"]
    for branch in fields["input"]["anyOf"]:
        ids = branch.get("items", {})
        ids = ids.get("items", ids)
        if ids.get("type") == "integer":
            ids["maximum"] = card.vocab_size - 1
    names = list(dict.fromkeys([served, card.name, ""]))
    fields["model"]["anyOf"] = [{"type": "string", "enum": names}, {"type": "null"}]
    low = 1 if card.matryoshka else card.dimensions
    fields["dimensions"]["anyOf"][0].update(minimum=low, maximum=card.dimensions)


@router.post(
    "/embeddings",
    response_model=EmbeddingsResponse,
    summary="Text to vectors (OpenAI's API)",
    responses={404: {"description": "Another model than the server's embeddings model."}},
)
async def create_embeddings(body: EmbeddingsRequest, request: Request):
    served = tasks_state(request).embedding_model
    embeddings.check_model(body.model, served)
    inputs = embeddings.check_inputs(body.input)

    def run():
        encoder = embeddings.encoder(served)
        embeddings.check_dimensions(body.dimensions, encoder)
        rows = encoder.token_ids(inputs)
        return encoder, rows, embeddings.shorten(encoder.embed(rows), body.dimensions)

    encoder, rows, vectors = await asyncio.to_thread(run)
    n_tokens = sum(len(r) for r in rows)
    return EmbeddingsResponse(
        data=[
            Embedding(index=i, embedding=embeddings.encoded(vector, body.encoding_format))
            for i, vector in enumerate(vectors)
        ],
        model=encoder.name,
        usage=EmbeddingsUsage(prompt_tokens=n_tokens, total_tokens=n_tokens),
    )
