import asyncio

import pytest


@pytest.fixture(scope="session")
def engine():
    """The embedded SmolLM2 on llama.cpp, 16 slots: shared by the engine tests."""
    from pocketlm.engine import load_engine

    eng = load_engine(None, n_seq=16, n_ctx=2048)
    yield eng
    eng.stop(0)


def run(coro):
    return asyncio.run(coro)
