"""The llama.cpp library (through llama-cpp-python's ctypes bindings), initialised once.

Both the llama.cpp backend (inference) and ``pocketlm.models`` (requantizing
GGUF files) call into llama.cpp; this module loads it, keeps its chatter off the
terminal and starts its backend, so each of them just imports ``C`` from here.
"""

from __future__ import annotations

import ctypes
import os

import llama_cpp as C

_LOG_ERROR = 4  # ggml_log_level: 1 debug, 2 info, 3 warn, 4 error


@C.llama_log_callback
def _quiet_log(level, text, user_data):
    """Errors reach users through exceptions; POCKETLM_DEBUG=1 shows llama.cpp's own error lines too."""
    if level == _LOG_ERROR and os.environ.get("POCKETLM_DEBUG"):
        print(text.decode("utf-8", "replace"), end="")


C.llama_log_set(_quiet_log, ctypes.c_void_p())
C.llama_backend_init()

__all__ = ["C"]
