"""lm-evaluation-harness against pocketlm: the same scores as its own `hf` model, and the gap on llama.cpp.

    HF_DATASETS_OFFLINE=1 PYTHONPATH=src:benchmarks python benchmarks/lm_eval_gap.py   # ~1 min; BENCHMARKS.md

A small multiple-choice task written here (questions of general knowledge, no hub dataset) runs against
lm-eval's ``hf`` model on SmolLM2's Hugging Face directory (the embedded GGUF dequantized to fp32) and
lm-eval's ``local-completions`` against ``pocketlm serve`` on the same directory: on the torch backend, and on
llama.cpp with the directory converted to q8_0 (with the q8_0 and the f16 KV cache) and to f32. It prints
each run's accuracy and the largest and mean difference of a choice's log-likelihood from the hf model's.
tests/test_scoring.py runs the torch half.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

TASK = "pocketlm_mc"
# (question, choices, index of the answer)
QUESTIONS = [
    ("What is the capital of France?", ["Berlin", "Paris", "Rome", "Madrid"], 1),
    ("How many legs does a spider have?", ["six", "four", "eight", "ten"], 2),
    ("Which planet is closest to the Sun?", ["Mercury", "Venus", "Mars", "Jupiter"], 0),
    ("What colour is a ripe banana?", ["blue", "purple", "green", "yellow"], 3),
    ("What do bees make?", ["milk", "honey", "silk", "wool"], 1),
    ("Water freezes at how many degrees Celsius?", ["0", "10", "50", "100"], 0),
    ("Which animal is known as the king of the jungle?", ["lion", "mouse", "goat", "owl"], 0),
    ("How many days are in a week?", ["five", "six", "seven", "nine"], 2),
    ("What is the largest ocean on Earth?", ["Atlantic", "Indian", "Arctic", "Pacific"], 3),
    ("Which gas do plants take in from the air?", ["oxygen", "carbon dioxide", "helium", "neon"], 1),
    ("What is the opposite of hot?", ["cold", "loud", "tall", "fast"], 0),
    ("Who wrote Romeo and Juliet?", ["Charles Dickens", "Jane Austen", "William Shakespeare", "Mark Twain"], 2),
    ("What is two plus two?", ["three", "four", "five", "six"], 1),
    ("Which season comes after winter?", ["autumn", "summer", "spring", "winter"], 2),
    ("What is the chemical symbol for gold?", ["Ag", "Fe", "Au", "Cu"], 2),
    ("Which instrument has black and white keys?", ["drum", "piano", "flute", "violin"], 1),
    ("What is the tallest animal?", ["giraffe", "elephant", "horse", "dog"], 0),
    ("In which continent is Egypt?", ["Asia", "Europe", "Africa", "Australia"], 2),
    ("What do you call frozen water?", ["steam", "ice", "rain", "mist"], 1),
    ("How many hours are in a day?", ["twelve", "twenty", "twenty-four", "thirty"], 2),
]


def write_task(directory: Path, questions: int = len(QUESTIONS)) -> Path:
    """The task's YAML and its data (the first ``questions``, JSON Lines) in ``directory``; lm-eval reads both."""
    directory.mkdir(parents=True, exist_ok=True)
    data = directory / "questions.jsonl"
    rows = QUESTIONS[:questions]
    data.write_text("".join(json.dumps({"question": q, "choices": c, "answer": a}) + "\n" for q, c, a in rows))
    (directory / f"{TASK}.yaml").write_text(
        f"task: {TASK}\n"
        "dataset_path: json\n"
        f"dataset_kwargs:\n  data_files:\n    test: {data}\n"
        "test_split: test\n"
        "output_type: multiple_choice\n"
        'doc_to_text: "Question: {{question}}\\nAnswer:"\n'
        "doc_to_choice: choices\n"
        "doc_to_target: answer\n"
        "metric_list:\n  - metric: acc\n"
    )
    return directory


def evaluate(model: str, model_args: str, task_dir: Path) -> tuple[float, list[float]]:
    """lm-eval's accuracy on the task and every choice's log-likelihood, question by question.

    Eight requests a batch: the hf model pads them into one forward pass, local-completions sends them as
    one request with a list of token-id prompts. Only the task's own directory is indexed (lm-eval's
    thousands of built-in task files take tens of seconds to read).
    """
    import lm_eval
    from lm_eval.tasks import TaskManager

    results = lm_eval.simple_evaluate(
        model=model,
        model_args=model_args,
        tasks=[TASK],
        task_manager=TaskManager(include_path=str(task_dir), include_defaults=False),
        log_samples=True,
        batch_size=8,
    )
    samples = sorted(results["samples"][TASK], key=lambda s: s["doc_id"])
    loglikelihoods = [float(resp[0][0]) for s in samples for resp in s["resps"]]
    return results["results"][TASK]["acc,none"], loglikelihoods


def hf_args(directory: Path) -> str:
    return f"pretrained={directory},dtype=float32,device=cpu"


def server_args(url: str, name: str, directory: Path) -> str:
    """local-completions on a pocketlm server: token ids from the same tokenizer, one request at a time."""
    return (
        f"base_url={url}/v1/completions,model={name},tokenizer_backend=huggingface,tokenizer={directory},"
        "tokenized_requests=True,num_concurrent=1,max_retries=1"
    )


def main() -> None:
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))
    import tempfile

    from api_server import Server
    from pocketlm.models import resolve
    from pocketlm.models.gguf_to_hf import gguf_to_hf

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--work", type=Path, default=Path(tempfile.mkdtemp(prefix="pocketlm-lm-eval-")))
    args = parser.parse_args()
    hf = args.work / "smollm2-hf"
    if not hf.exists():
        gguf_to_hf(resolve(None).path, hf)
    task_dir = write_task(args.work / "task")
    reference_acc, reference = evaluate("hf", hf_args(hf), task_dir)
    print(f"hf (transformers, fp32): acc {reference_acc:.3f}")
    runs = (
        ("torch", ["--backend", "torch"]),
        ("llama.cpp q8_0", ["--quantization", "q8_0"]),  # the default: q8_0 weights and (8 slots) q8_0 KV
        ("llama.cpp q8_0, f16 KV", ["--quantization", "q8_0", "--kv-type", "f16"]),
        ("llama.cpp f32, f16 KV", ["--quantization", "f32", "--kv-type", "f16"]),  # what remains is llama.cpp's math
    )
    for label, flags in runs:
        server = Server("--model", str(hf), *flags, "--slots", "8", "--n-ctx", "512")
        try:
            acc, ours = evaluate("local-completions", server_args(server.url, hf.name, hf), task_dir)
        finally:
            server.stop()
        gaps = [abs(a - b) for a, b in zip(ours, reference, strict=True)]
        print(
            f"pocketlm {label}: acc {acc:.3f}; per-choice log-likelihood gap vs hf: max {max(gaps):.2e}, "
            f"mean {sum(gaps) / len(gaps):.2e} over {len(gaps)} choices"
        )


if __name__ == "__main__":
    main()
