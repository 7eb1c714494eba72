"""The package's shape: a request flows one way, no module needs itself to load, and ruff finds nothing.

`lint-imports` (import-linter) checks the layers declared in pyproject.toml, and that only the
command line imports click; the cycle check below walks grimp's import graph, function-local
imports included (they are how cycles usually hide).
"""

import shutil
import subprocess
import sys
from pathlib import Path

import grimp

REPO = Path(__file__).resolve().parents[1]


def test_layers_are_respected():
    lint = shutil.which("lint-imports", path=str(Path(sys.executable).parent))
    out = subprocess.run([lint], capture_output=True, text=True, cwd=REPO)
    assert out.returncode == 0, out.stdout[-3000:]
    # click (the command line) stays out of the engine, the backends, the API, the server and the models' code
    assert "Only the command line imports click KEPT" in out.stdout


def test_ruff_lint_and_format_are_clean():
    ruff = shutil.which("ruff", path=str(Path(sys.executable).parent))
    for command in (["check"], ["format", "--check"]):
        out = subprocess.run([ruff, *command, "src", "tests", "benchmarks"], capture_output=True, text=True, cwd=REPO)
        assert out.returncode == 0, f"ruff {' '.join(command)}:\n{out.stdout[-3000:]}"


def test_the_command_line_starts_without_the_servers_libraries():
    """Every `pocketlm` start imports the commands and their settings; FastAPI and the routes come with `serve`
    (``server.features()``), the tasks' engines and the backends with the command that runs them. Importing them
    at the start cost every command, `pocketlm --help` included, about a second."""
    heavy = ("fastapi", "faster_whisper", "llama_cpp", "pocketlm.api", "pydantic", "torch", "transformers")
    code = f"import sys, pocketlm.cli; print([m for m in {heavy!r} if m in sys.modules])"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_no_import_cycles():
    graph = grimp.build_graph("pocketlm")
    cycles = [c for c in _strongly_connected(graph) if len(c) > 1]
    assert cycles == []


def _strongly_connected(graph) -> list[set[str]]:
    """Tarjan's algorithm over module -> directly imported modules."""
    index, low, stack, on_stack, found = {}, {}, [], set(), []

    def visit(module: str) -> None:
        index[module] = low[module] = len(index)
        stack.append(module)
        on_stack.add(module)
        for imported in graph.find_modules_directly_imported_by(module):
            if imported not in index:
                visit(imported)
                low[module] = min(low[module], low[imported])
            elif imported in on_stack:
                low[module] = min(low[module], index[imported])
        if low[module] == index[module]:
            component = set()
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.add(member)
                if member == module:
                    break
            found.append(component)

    for module in sorted(graph.modules):
        if module not in index:
            visit(module)
    return found
