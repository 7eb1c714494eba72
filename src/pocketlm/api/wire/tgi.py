"""Hugging Face text-generation-inference (TGI): ``{"inputs", "parameters", "stream"}``.

What ``huggingface_hub.InferenceClient.text_generation`` sends and parses. TGI's
own rules: greedy unless ``do_sample`` (or a sampling parameter) asks for
sampling, 100 new tokens by default, the continuation only unless
``return_full_text``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Literal

from pydantic import BaseModel, Field

from pocketlm.api.errors import Unsupported
from pocketlm.api.wire.common import (
    Aliases,
    or_default,
    protocol_default,
    reject_unsupported,
    sampling_field,
    stop_tuple,
    unsupported_field,
)
from pocketlm.engine.outputs import Sample, SampleFinished, TextDelta
from pocketlm.engine.params import Limits, SamplingParams
from pocketlm.wire_types import PROMPT, Integer, RequestBody

DEFAULT_MAX_NEW_TOKENS = 100  # TGI's default
FinishReason = Literal["length", "eos_token", "stop_sequence"]
_FINISH = "Why generation ended: length (the token limit), eos_token (the model ended), stop_sequence (a stop string)."


class TGIParameters(RequestBody):
    """TGI's ``parameters``."""

    max_new_tokens: Integer | None = sampling_field(
        "max_new_tokens", note=f"Default: TGI's {DEFAULT_MAX_NEW_TOKENS}, or the server's max_new_tokens when lower."
    )
    temperature: float | None = sampling_field(
        "temperature", note="Setting it turns sampling on (unless do_sample is false)."
    )
    top_k: Integer | None = sampling_field("top_k", note="Setting it turns sampling on (unless do_sample is false).")
    top_p: float | None = sampling_field("top_p", note="Setting it turns sampling on (unless do_sample is false).")
    do_sample: bool | None = Field(
        None, description="false: greedy. Unset: greedy unless temperature, top_k, top_p or seed is given (as TGI)."
    )
    seed: Integer | None = sampling_field("seed", note="Setting it turns sampling on (unless do_sample is false).")
    stop: list[str] | None = sampling_field("stop")
    repetition_penalty: float | None = sampling_field("repetition_penalty")
    frequency_penalty: float | None = sampling_field("frequency_penalty")
    return_full_text: bool | None = Field(None, description="Prepend the prompt to generated_text.")
    details: bool | None = Field(
        None, description="Add finish_reason, token count, seed and per-token logprobs to the answer."
    )
    top_n_tokens: Integer | None = sampling_field(
        "logprobs", note="TGI's name; the alternatives come in details.top_tokens."
    )
    truncate: Integer | None = Field(None, ge=1, description="Keep only the last `truncate` tokens of the prompt.")
    best_of: Integer | None = unsupported_field("1 is accepted.", accepted=({"type": "integer", "enum": [1]},))
    decoder_input_details: bool | None = unsupported_field("false is accepted.", accepted=({"const": False},))
    typical_p: float | None = unsupported_field(
        "1.0 is accepted; use top_p or min_p instead.", accepted=({"type": "number", "enum": [1.0]},)
    )
    watermark: bool | None = unsupported_field("false is accepted.", accepted=({"const": False},))
    grammar: dict | None = unsupported_field(
        "An empty object is accepted.", accepted=({"type": "object", "maxProperties": 0},)
    )
    adapter_id: str | None = unsupported_field()


class TGIRequest(RequestBody):
    inputs: str = Field(
        description="The prompt. The answer's generated_text is the continuation only (see return_full_text).",
        json_schema_extra={PROMPT: True},
    )
    parameters: TGIParameters = Field(default_factory=TGIParameters, description="How to generate.")
    stream: bool = Field(False, description="Stream server-sent events, one per token, as /generate_stream.")

    def engine_request(
        self, tokenize: Callable[[str], list[int]], limits: Limits = Limits()
    ) -> tuple[str | list[int], SamplingParams, Aliases]:
        """The prompt (token ids when truncated), the engine's parameters, and TGI's names for them."""
        p = self.parameters
        reject_unsupported(
            {
                "parameters.decoder_input_details": p.decoder_input_details,
                "parameters.watermark": p.watermark,
                "parameters.grammar": p.grammar,
                "parameters.adapter_id": p.adapter_id,
            }
        )
        if p.best_of not in (None, 1):
            raise Unsupported("parameters.best_of", "is not supported by pocketlm; remove it or set it to 1")
        if p.typical_p not in (None, 1.0):
            raise Unsupported("parameters.typical_p", "is not supported by pocketlm; use top_p or min_p instead")
        sample = (
            p.do_sample
            if p.do_sample is not None
            else any(v is not None for v in (p.temperature, p.top_k, p.top_p, p.seed))
        )
        params = SamplingParams(
            max_new_tokens=or_default(p.max_new_tokens, protocol_default(DEFAULT_MAX_NEW_TOKENS, limits)),
            temperature=or_default(p.temperature, 1.0) if sample else 0.0,
            top_k=or_default(p.top_k, 0),
            top_p=or_default(p.top_p, 1.0),
            repetition_penalty=or_default(p.repetition_penalty, 1.0),
            frequency_penalty=or_default(p.frequency_penalty, 0.0),
            seed=p.seed,
            stop=stop_tuple(p.stop),
            logprobs=(p.top_n_tokens or 0) if (p.details or p.top_n_tokens) else None,
        )
        names = (
            "max_new_tokens",
            "temperature",
            "top_k",
            "top_p",
            "repetition_penalty",
            "frequency_penalty",
            "seed",
            "stop",
        )
        aliases = {name: f"parameters.{name}" for name in names} | {
            "logprobs": "parameters.top_n_tokens",
            "prompt": "inputs",
        }
        prompt = self.inputs if p.truncate is None else tokenize(self.inputs)[-p.truncate :]
        return prompt, params, aliases


class TGIToken(BaseModel):
    id: int = Field(description="Token id.")
    text: str = Field(description="The token's text.")
    logprob: float | None = Field(None, description="Log-probability of the token under the model.")
    special: bool = Field(False, description="True for special tokens such as end-of-sequence.")

    @classmethod
    def of_delta(cls, delta: TextDelta) -> TGIToken:
        """A TGI token for one delta (a delta is usually one token; if several, the last one's id)."""
        token_id = delta.token_ids[-1] if delta.token_ids else 0
        logprob = sum(lp.logprob for lp in delta.logprobs) if delta.logprobs else None
        return cls(id=token_id, text=delta.text, logprob=logprob)

    @classmethod
    def alternatives(cls, delta: TextDelta) -> list[TGIToken] | None:
        if not delta.logprobs or not delta.logprobs[-1].top:
            return None
        return [cls(id=a.token_id, text=a.token, logprob=a.logprob) for a in delta.logprobs[-1].top]

    @classmethod
    def of_sample(cls, sample: Sample) -> list[TGIToken]:
        """Per-token details of a finished sample (needs logprobs)."""
        return [cls(id=lp.token_id, text=lp.token, logprob=lp.logprob) for lp in sample.logprobs]


def finish_reason(finished: SampleFinished | Sample) -> FinishReason:
    reason = finished.reason if isinstance(finished, SampleFinished) else finished.finish_reason
    if reason == "length":
        return "length"
    return "stop_sequence" if finished.stop is not None else "eos_token"


class TGIDetails(BaseModel):
    finish_reason: FinishReason = Field(description=_FINISH)
    generated_tokens: int = Field(description="Tokens generated.")
    seed: int | None = Field(None, description="The seed used, if one was given.")
    input_length: int | None = Field(None, description="Prompt tokens (after truncate).")
    prefill: list[TGIToken] = Field(default_factory=list, description="Prompt tokens with logprobs: always empty here.")
    tokens: list[TGIToken] | None = Field(None, description="Each generated token with its logprob.")
    top_tokens: list[list[TGIToken]] | None = Field(
        None, description="Most likely alternatives per token (top_n_tokens)."
    )


class TGIResponse(BaseModel):
    generated_text: str = Field(description="The continuation (with the prompt before it when return_full_text).")
    details: TGIDetails | None = Field(None, description="With parameters.details: how generation went.")


class TGIStreamDetails(BaseModel):
    finish_reason: FinishReason = Field(description=_FINISH)
    generated_tokens: int = Field(description="Tokens generated.")
    input_length: int = Field(description="Prompt tokens (after truncate).")
    seed: int | None = Field(None, description="The seed used, if one was given.")


class TGIStreamEvent(BaseModel):
    index: int = Field(description="Position of this token in the output.")
    token: TGIToken = Field(description="The token this event adds.")
    top_tokens: list[TGIToken] | None = Field(None, description="Most likely alternatives (top_n_tokens).")
    generated_text: str | None = Field(None, description="The whole text, on the last event only.")
    details: TGIStreamDetails | None = Field(None, description="How generation went, on the last event only.")
