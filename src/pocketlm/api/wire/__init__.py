"""The HTTP bodies, one module per protocol, and how each becomes an engine request.

- ``seeds``: the seeds' ``POST /generate`` (``{"prompt"}`` -> ``{"response"}``), HF-generate-style options;
- ``tgi``: Hugging Face text-generation-inference (``{"inputs", "parameters"}``);
- ``openai``: ``/v1/completions``, ``/v1/chat/completions``, ``/v1/models``;
- ``service``: tokenizer, health and readiness.

Each request model translates itself to the engine's ``SamplingParams`` with its
protocol's defaults (named constants beside the model) and tells which client
names to use in error messages (``aliases``: engine name -> client name).
Ranges are checked once, by the engine (``SamplingParams.validated``), so the
limits configured on the server apply to every protocol. Wire classes are named
apart from the engine's (``UsageInfo`` is the wire form of ``engine.Usage``).
"""
