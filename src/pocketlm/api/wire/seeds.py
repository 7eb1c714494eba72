"""The seeds' ``POST /generate``: ``{"prompt": ...}`` -> ``{"response": "<prompt + continuation>"}``.

The seeds served GPT-2 through a Hugging Face text-generation pipeline, so the
options are HF ``generate``'s: sampling unless ``do_sample`` is false, top_k 50,
50 new tokens, ``max_length`` counting the prompt, ``num_return_sequences``.
The same route also takes TGI's body (``inputs``), answered in TGI's shape.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace

from pydantic import BaseModel, ConfigDict, Field, model_validator

from pocketlm.api.wire.common import (
    Aliases,
    Stop,
    model_field,
    or_default,
    protocol_default,
    sampling_field,
    stop_tuple,
)
from pocketlm.api.wire.tgi import TGIParameters, TGIRequest
from pocketlm.engine.params import Limits, SamplingParams
from pocketlm.errors import InvalidParameter
from pocketlm.wire_types import SAMPLING, Integer, RequestBody

DEFAULT_MAX_NEW_TOKENS = 50  # the seeds' GPT-2 text-generation pipeline stops at 50 tokens
DEFAULT_TOP_K = 50  # HF generate's default when sampling


_ABSENT = {"type": "null"}
# The seeds' options; TGI's shape takes them in `parameters` instead.
_SEEDS_ONLY = (
    "max_new_tokens",
    "max_length",
    "temperature",
    "top_k",
    "top_p",
    "repetition_penalty",
    "num_return_sequences",
    "seed",
    "stop",
    "do_sample",
)


class GenerateRequest(RequestBody):
    """The seeds' body ``{"prompt": ...}`` with HF-generate-style options, \
or TGI's ``{"inputs": ..., "parameters": {...}}``."""

    # One shape or the other (see _one_shape), and one length limit, as JSON Schema says it.
    model_config = ConfigDict(
        json_schema_extra={
            "oneOf": [
                {
                    "required": ["prompt"],
                    "properties": {
                        "prompt": {"type": "string"},
                        "inputs": _ABSENT,
                        "parameters": _ABSENT,
                        "stream": {"const": False},
                    },
                },
                {
                    "required": ["inputs"],
                    "properties": {
                        "inputs": {"type": "string"},
                        "prompt": _ABSENT,
                        **{name: _ABSENT for name in _SEEDS_ONLY},
                    },
                },
            ],
            "if": {"required": ["max_length"], "properties": {"max_length": {"type": "integer"}}},
            "then": {"properties": {"max_new_tokens": _ABSENT}},
        }
    )

    prompt: str | None = Field(
        None, description="Text to continue; the answer's `response` repeats it (the seeds' contract)."
    )
    model: str | None = model_field("In either shape, which model continues the text: ")
    max_new_tokens: Integer | None = sampling_field(
        "max_new_tokens", note=f"Default: {DEFAULT_MAX_NEW_TOKENS}, or the server's max_new_tokens when lower."
    )
    max_length: Integer | None = Field(
        None,
        description="Total length in tokens, prompt included (as HF generate(max_length=...)); "
        "instead of max_new_tokens. A prompt already that long still gets one new token (as HF).",
        json_schema_extra={SAMPLING: "max_new_tokens"},
    )
    temperature: float | None = sampling_field("temperature", note="Default: 1 when sampling.")
    top_k: Integer | None = sampling_field("top_k", note=f"Default: {DEFAULT_TOP_K} when sampling (as HF generate).")
    top_p: float | None = sampling_field("top_p")
    repetition_penalty: float | None = sampling_field("repetition_penalty")
    num_return_sequences: Integer | None = sampling_field("n", note="When set, the answer has `responses` (a list).")
    seed: Integer | None = sampling_field("seed")
    stop: Stop = sampling_field("stop")
    do_sample: bool | None = Field(
        None, description="false: greedy decoding. Default: sample (as the seeds' GPT-2 pipeline)."
    )
    inputs: str | None = Field(
        None, description="TGI shape: the prompt. The answer has `generated_text` (continuation only)."
    )
    parameters: TGIParameters | None = Field(None, description="TGI shape: how to generate.")
    stream: bool = Field(False, description="TGI shape only: stream server-sent events as /generate_stream.")

    @model_validator(mode="after")
    def _one_shape(self):
        if (self.prompt is None) == (self.inputs is None):
            raise InvalidParameter(
                "prompt", "give either 'prompt' (pocketlm) or 'inputs' (Hugging Face TGI), not both or neither"
            )
        if self.prompt is not None and (self.parameters is not None or self.stream):
            raise InvalidParameter(
                "parameters",
                "'parameters' and 'stream' belong to the TGI shape, which uses 'inputs' instead of 'prompt'",
            )
        if self.inputs is not None:
            for name in _SEEDS_ONLY:
                if getattr(self, name) is not None:
                    raise InvalidParameter(
                        name, "belongs to the shape with 'prompt'; with 'inputs' (TGI), put it in 'parameters'"
                    )
        return self

    @property
    def is_tgi(self) -> bool:
        return self.inputs is not None

    def tgi(self) -> TGIRequest:
        return TGIRequest(inputs=self.inputs, parameters=self.parameters or TGIParameters(), stream=self.stream)

    def engine_request(
        self, tokenize: Callable[[str], list[int]], limits: Limits = Limits()
    ) -> tuple[str | list[int], SamplingParams, Aliases]:
        """The prompt (token ids when max_length needs its length), the engine's parameters, the seeds' names."""
        prompt, max_new = self.prompt, self.max_new_tokens
        aliases = {"n": "num_return_sequences"}
        if self.max_length is not None:  # HF generate's max_length counts the prompt too
            if max_new is not None:
                raise InvalidParameter("max_length", "give max_length or max_new_tokens, not both")
            if self.max_length > limits.max_new_tokens:  # whatever the prompt: a bound the OpenAPI document can state
                raise InvalidParameter("max_length", f"must be <= {limits.max_new_tokens}, got {self.max_length}")
            prompt = tokenize(self.prompt)
            max_new = max(1, self.max_length - len(prompt))  # as HF generate: at least one new token
            aliases["max_new_tokens"] = "max_length"
        params = SamplingParams(
            max_new_tokens=or_default(max_new, protocol_default(DEFAULT_MAX_NEW_TOKENS, limits)),
            temperature=or_default(self.temperature, 1.0),
            top_k=or_default(self.top_k, DEFAULT_TOP_K),
            top_p=or_default(self.top_p, 1.0),
            repetition_penalty=or_default(self.repetition_penalty, 1.0),
            seed=self.seed,
            stop=stop_tuple(self.stop),
            n=or_default(self.num_return_sequences, 1),
        )
        if self.do_sample is False:  # greedy, as HF generate; the sampling fields given must still be valid
            params = replace(params.validated(limits), temperature=0.0, top_k=0)
        return prompt, params, aliases


class GenerateResponse(BaseModel):
    response: str | None = Field(None, description="Prompt + continuation (without num_return_sequences).")
    responses: list[str] | None = Field(
        None, description="Prompt + continuation, one per sequence (with num_return_sequences)."
    )
