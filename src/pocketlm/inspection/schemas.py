"""Request and response bodies of ``POST /v1/inspect/{tokens,positions,attention,next}``.

Field names are the CLI's option names (``--layers`` is ``layers``) and the
sampling fields are the engine's (``temperature``, ``top_k``, ``top_p``,
``min_p``, ``repetition_penalty``, ``seed``), checked by the engine's own rules.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, Field

from pocketlm.engine.params import SamplingParams
from pocketlm.inspection.loading import BERT
from pocketlm.inspection.nexttoken import MAX_TOP
from pocketlm.inspection.tokens import BERT_WORDPIECE, GPT2, MAX_TEXT_CHARS
from pocketlm.wire_types import SAMPLING, SERVED_MODEL, Integer, RequestBody

# The served models' names are known when the server runs: the document puts them in these enums (api.openapi).
ModelField = Field(
    None,
    description="What to look inside: a served model's id (omitted or empty: the default model), or "
    f"`{BERT}` for the BERT encoder shipped with pocketlm.",
    json_schema_extra={SERVED_MODEL: ["", BERT]},
)
DecoderField = Field(
    None,
    description="Whose next token: a served model's id (omitted or empty: the default model).",
    json_schema_extra={SERVED_MODEL: [""]},
)
Picture = Literal["json", "png"]


def text_field(description: str):
    """A text of 1 to MAX_TEXT_CHARS characters, not only whitespace (what ``tokens.check_text`` enforces)."""
    return Field(
        ..., description=description, json_schema_extra={"minLength": 1, "maxLength": MAX_TEXT_CHARS, "pattern": r"\S"}
    )


def _tokenizer_names(schema: dict) -> None:
    for branch in schema.get("anyOf", [schema]):
        if branch.get("type") == "array":
            branch["uniqueItems"] = True
            branch["items"][SERVED_MODEL] = [GPT2, BERT_WORDPIECE]


# --------------------------------------------------------------------------- tokens


class TokensRequest(RequestBody):
    text: str = text_field("The text to tokenize (1 to 20,000 characters).")
    tokenizers: list[str] | None = Field(
        None,
        description="Tokenizers to compare, side by side, each once: a served model's id, `gpt2` (GPT-2's "
        "byte-level BPE), `bert` (BERT's WordPiece, as the seed notebook's `BertTokenizer`). Default: "
        "the default model's.",
        json_schema_extra=_tokenizer_names,
    )
    format: Picture = Field("json", description="`png`: a picture of the tokens instead of JSON.")


class TokenOut(BaseModel):
    id: int = Field(..., description="The token's id in the vocabulary.")
    piece: str = Field(..., description="The vocabulary entry as the tokenizer writes it (`Ġnovel`, `##vel`, `[CLS]`).")
    bytes: str = Field(..., description="The UTF-8 bytes it stands for, in hex (`c3 a7`).")
    text: str = Field(..., description="Those bytes as text; empty when they are only part of a character.")
    start: int = Field(..., description="Byte offset in the text where the token starts.")
    end: int = Field(..., description="Byte offset where it ends (== start for a token the tokenizer added).")
    special: bool = Field(..., description="A control token ([CLS], [SEP], <|im_start|>), not text.")
    partial: bool = Field(..., description="Its bytes are part of a UTF-8 character (byte-level BPE splits 🙂).")


class TokenizationOut(BaseModel):
    tokenizer: str = Field(..., description="The tokenizer's name, as asked.")
    kind: str = Field(..., description="Its algorithm: `byte-level BPE`, `WordPiece`, `SentencePiece ...`.")
    count: int = Field(..., description="How many tokens the text becomes.")
    tokens: list[TokenOut] = Field(..., description="The tokens, in order.")


class TokensResponse(BaseModel):
    text: str = Field(..., description="The text, as received.")
    results: list[TokenizationOut] = Field(..., description="One tokenization per tokenizer asked for.")


# --------------------------------------------------------------------------- positions


class PositionsRequest(RequestBody):
    model: str | None = ModelField
    positions: Integer = Field(64, ge=1, le=512, description="How many positions to show (1 to 512).")
    dim: Integer = Field(128, ge=2, le=1024, description="Dimensions of the sinusoidal encoding (2 to 1024).")
    format: Picture = Field(
        "json", description="`png`: the picture (formula beside the model's scheme) instead of JSON."
    )


class SinusoidalOut(BaseModel):
    formula: str = Field(..., description="The formula of 'Attention Is All You Need' these values follow.")
    values: list[list[float]] = Field(..., description="PE[position][dimension].")


class ModelPositionsOut(BaseModel):
    model: str = Field(..., description="The model whose scheme this is.")
    kind: Literal["learned", "rotary", "none"] = Field(
        ...,
        description="`learned`: a trained vector per position (GPT-2, BERT); `rotary`: queries and keys rotated "
        "by position (Llama, SmolLM2); `none`: not recognised.",
    )
    description: str = Field(..., description="The scheme in words.")
    table: list[list[float]] | None = Field(None, description="learned: the trained vectors, [position][dimension].")
    similarity: list[list[float]] | None = Field(None, description="learned: cosine similarity between positions.")
    inv_freq: list[float] | None = Field(
        None, description="rotary: theta_i, radians per position, per pair of dimensions."
    )
    wavelengths: list[float] | None = Field(None, description="rotary: positions per full turn, 2 pi / theta_i.")
    base: float | None = Field(None, description="rotary: the base of theta_i = base^(-2i/d_head).")


class PositionsResponse(BaseModel):
    sinusoidal: SinusoidalOut = Field(..., description="The fixed sinusoidal encoding, for comparison.")
    model: ModelPositionsOut = Field(..., description="The model's own position scheme.")


# --------------------------------------------------------------------------- attention


class AttentionRequest(RequestBody):
    text: str = text_field("The text (at most 20,000 characters and 256 tokens).")
    model: str | None = ModelField
    layers: list[Integer] | None = Field(None, description="Layers to return, numbered from 0 (default: all).")
    heads: list[Integer] | None = Field(
        None, description="Heads to return in each layer, numbered from 0 (default: all)."
    )
    format: Literal["json", "png", "html"] = Field(
        "json",
        description="`png`: a grid of heatmaps (one heatmap with labels when one layer and one head are "
        "chosen); `html`: bertviz's interactive view, self-contained, no network needed.",
    )
    view: Literal["head", "model"] = Field("head", description="With `html`: bertviz's `head_view` or `model_view`.")


class AttentionResponse(BaseModel):
    model: str = Field(..., description="The model looked inside.")
    causal: bool = Field(
        ..., description="A decoder: each token sees only itself and earlier tokens (zeros above the diagonal)."
    )
    tokens: list[str] = Field(..., description="The tokens as text (bytes in hex when part of a character).")
    ids: list[int] = Field(..., description="Their ids.")
    layers: list[int] = Field(..., description="The layers, in the order of the first axis of `weights`.")
    heads: list[int] = Field(..., description="The heads, in the order of the second axis of `weights`.")
    weights: list[list[list[list[float]]]] = Field(
        ...,
        description="[layer][head][query token][key token]: how much each token attends to each other; rows sum to 1.",
    )


# --------------------------------------------------------------------------- next token


def _sampling(default, description: str, name: str):
    """A sampling field: the document states the engine's bounds for it (api.openapi), ``validated()`` checks them."""
    return Field(default, description=description, json_schema_extra={SAMPLING: name})


class NextRequest(RequestBody):
    prompt: str = text_field("The text whose next token is shown (at most 20,000 characters and 2,048 tokens).")
    model: str | None = DecoderField
    temperature: float = _sampling(1.0, "As in generation: 0 = greedy.", "temperature")
    top_k: Integer = _sampling(0, "Keep the k most likely tokens (0 = off).", "top_k")
    top_p: float = _sampling(1.0, "Keep the smallest set of tokens whose probability reaches top_p.", "top_p")
    min_p: float = _sampling(0.0, "Drop tokens less likely than min_p x the most likely one.", "min_p")
    repetition_penalty: float = _sampling(
        1.0, "Divide the logits of tokens already in the prompt (1 = off).", "repetition_penalty"
    )
    seed: Integer | None = _sampling(None, "With a seed: the token a generation with this seed starts with.", "seed")
    top: Integer = Field(
        10, ge=1, le=MAX_TOP, description=f"Candidates to list before and after the parameters (1 to {MAX_TOP})."
    )
    lens_top: Integer = Field(
        3, ge=1, le=MAX_TOP, description=f"Tokens to list per layer in the logit lens (1 to {MAX_TOP})."
    )
    format: Picture = Field("json", description="`png`: bar charts and the logit lens as a picture instead of JSON.")

    def sampling_params(self) -> SamplingParams:
        return SamplingParams(
            temperature=self.temperature,
            top_k=self.top_k,
            top_p=self.top_p,
            min_p=self.min_p,
            repetition_penalty=self.repetition_penalty,
            seed=self.seed,
        )


class CandidateOut(BaseModel):
    id: int = Field(..., description="Token id.")
    text: str = Field(..., description="The token as text (bytes in hex when part of a character).")
    probability: float = Field(..., description="Its probability.")


class LensLayerOut(BaseModel):
    layer: int = Field(..., description="0: the embeddings; n: after the n-th block; the last is the model's output.")
    top: list[CandidateOut] = Field(
        ..., description="Its most likely tokens, read through the final norm and output layer."
    )


class NextResponse(BaseModel):
    model: str = Field(..., description="The model looked inside.")
    prompt_tokens: int = Field(..., description="Tokens in the prompt.")
    before: list[CandidateOut] = Field(
        ..., description="The model's own distribution (softmax of the logits), most likely first."
    )
    after: list[CandidateOut] = Field(
        ..., description="What pocketlm's sampler draws from after the parameters, most likely first."
    )
    kept: int = Field(..., description="Tokens left with a non-zero probability after the parameters.")
    chosen: CandidateOut | None = Field(None, description="With `seed`: the token that seed draws.")
    lens: list[LensLayerOut] = Field(..., description="The logit lens: each layer's top tokens.")


# --------------------------------------------------------------------------- the views -> these bodies
# (shared by the HTTP routes and `pocketlm inspect ... --json`, so both print the same JSON)

DECIMALS = 6  # weights as JSON: enough to check sums, a third of the text of full floats


def _floats(array) -> list:
    import numpy as np

    return np.round(np.asarray(array, dtype=np.float64), DECIMALS).tolist()


def tokens_body(text: str, tokenizations) -> TokensResponse:
    return TokensResponse(
        text=text,
        results=[
            TokenizationOut(
                tokenizer=t.tokenizer,
                kind=t.kind,
                count=t.count,
                tokens=[TokenOut(**vars(token)) for token in t.tokens],
            )
            for t in tokenizations
        ],
    )


def positions_body(name: str, pe, scheme) -> PositionsResponse:
    from pocketlm.inspection.positions import SINUSOIDAL_FORMULA

    def maybe(value):
        return None if value is None else _floats(value)

    return PositionsResponse(
        sinusoidal=SinusoidalOut(formula=SINUSOIDAL_FORMULA, values=_floats(pe)),
        model=ModelPositionsOut(
            model=name,
            kind=scheme.kind,
            description=scheme.description,
            table=maybe(scheme.table),
            similarity=maybe(scheme.similarity),
            inv_freq=maybe(scheme.inv_freq),
            wavelengths=maybe(scheme.wavelengths),
            base=scheme.base,
        ),
    )


def attention_body(name: str, amap) -> AttentionResponse:
    return AttentionResponse(
        model=name,
        causal=amap.causal,
        tokens=amap.tokens,
        ids=amap.ids,
        layers=amap.layers,
        heads=amap.heads,
        weights=_floats(amap.weights),
    )


def next_body(name: str, result) -> NextResponse:
    def out(c):
        return CandidateOut(id=c.id, text=c.text, probability=c.probability)

    return NextResponse(
        model=name,
        prompt_tokens=result.prompt_tokens,
        before=[out(c) for c in result.before],
        after=[out(c) for c in result.after],
        kept=result.kept,
        chosen=out(result.chosen) if result.chosen else None,
        lens=[LensLayerOut(layer=i, top=[out(c) for c in layer]) for i, layer in enumerate(result.lens)],
    )
