"""Form bodies (urlencoded or multipart), which the API-key check and the tasks' routes read.

Starlette parses them with python-multipart, which comes with the 'tasks' extra: a server installed without
it (the Docker image) answers a form with what to install, not an internal error.
"""

from __future__ import annotations

from importlib.util import find_spec

from fastapi import Request
from starlette.datastructures import FormData

from pocketlm.errors import InvalidParameter

FORMS = ("application/x-www-form-urlencoded", "multipart/form-data")


def is_form(request: Request) -> bool:
    return request.headers.get("content-type", "").split(";")[0].strip().lower() in FORMS


async def read_form(request: Request) -> FormData:
    """The request's form, parsed once (Starlette keeps it: a second read is free)."""
    if find_spec("python_multipart") is None:
        raise InvalidParameter(
            "body",
            "form bodies need python-multipart (the 'tasks' extra): pip install 'pocketlm[tasks]', "
            "or send JSON (Content-Type: application/json)",
        )
    return await request.form()
