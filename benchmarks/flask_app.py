"""The seeds' serving pattern, as a benchmark peer: Flask + `AutoModelForCausalLM.generate`.

One model loaded at start-up, Flask's threaded development server, and every request runs its
own `model.generate(...)` in its own thread: no batching, no streaming. The contract is the
seeds': POST /generate {"prompt": "..."} -> {"response": "<prompt + continuation>"}.

Two optional request fields let the benchmark ask the same of every server: `max_new_tokens`
and `ignore_eos` (implemented with `min_new_tokens`, so the model cannot stop early); `temperature`
0 is greedy. The reply adds `completion_tokens`, the number of tokens actually generated.

    python benchmarks/flask_app.py --model HF_DIR --host 127.0.0.1 --port 5000
"""

from __future__ import annotations

import argparse

import torch
from flask import Flask, jsonify, request
from transformers import AutoModelForCausalLM, AutoTokenizer


def create_app(model_dir: str) -> Flask:
    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    model = AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch.float32)
    model.eval()
    app = Flask(__name__)

    @app.get("/health")
    def health():
        return jsonify(status="ok")

    @app.post("/generate")
    def generate():
        body = request.get_json(force=True)
        prompt = body["prompt"]
        max_new_tokens = int(body.get("max_new_tokens", 50))
        temperature = float(body.get("temperature", 1.0))
        options = {"max_new_tokens": max_new_tokens, "pad_token_id": tokenizer.eos_token_id}
        if body.get("ignore_eos"):
            options["min_new_tokens"] = max_new_tokens
        if temperature > 0:
            options.update(do_sample=True, temperature=temperature)
        else:
            options["do_sample"] = False
        inputs = tokenizer(prompt, return_tensors="pt")
        with torch.inference_mode():
            output = model.generate(**inputs, **options)
        new_tokens = output[0, inputs["input_ids"].shape[1] :]
        continuation = tokenizer.decode(new_tokens, skip_special_tokens=True)
        return jsonify(response=prompt + continuation, completion_tokens=int(new_tokens.numel()))

    return app


def main():
    ap = argparse.ArgumentParser(description="The seeds' Flask app (benchmark peer).")
    ap.add_argument("--model", required=True, help="a Hugging Face model directory")
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--port", type=int, default=5000)
    ap.add_argument("--threads", type=int, default=None, help="torch intra-op threads (default: torch's)")
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    create_app(args.model).run(host=args.host, port=args.port, threaded=True)


if __name__ == "__main__":
    main()
