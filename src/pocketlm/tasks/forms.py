"""The bodies the task routes parse themselves: JSON or a form (LibreTranslate's clients send either, uploads
come as multipart), validated as their JSON Schema reads, and documented for /docs.
"""

from __future__ import annotations

import json
from decimal import Decimal

from fastapi import Request
from pydantic import BaseModel, ValidationError

from pocketlm.errors import InvalidParameter
from pocketlm.service.forms import FORMS, is_form, read_form


def body_schema(model: type[BaseModel], *content_types: str) -> dict:
    """Document a body the route parses itself (JSON or form), for /docs."""
    schema = model.model_json_schema(ref_template="#/components/schemas/{model}")
    schema.pop("$defs", None)
    return {
        "requestBody": {
            "required": True,
            "content": {t: {"schema": form_schema(schema) if t in FORMS else schema} for t in content_types},
        }
    }


def form_schema(schema: dict) -> dict:
    """A form has no null: an optional field is left out instead (and a form's values are text,
    read as the schema says)."""
    form = json.loads(json.dumps(schema))
    for field in form["properties"].values():
        options = [o for o in field.get("anyOf", ()) if o.get("type") != "null"]
        if "anyOf" in field and len(options) == 1:
            del field["anyOf"]
            field.update(options[0])
        elif "anyOf" in field:
            field["anyOf"] = options
    return form


async def read_body(request: Request) -> tuple[dict, dict, bool]:
    """(fields, uploaded files, whether it was a form) of a JSON object or a form body."""
    if is_form(request):
        form = await read_form(request)
        fields, files = {}, {}
        for key in form.keys():
            values = form.getlist(key)
            uploads = [v for v in values if hasattr(v, "read")]
            if uploads:
                files[key] = uploads[0]
            else:
                fields[key] = values if len(values) > 1 else values[0]
        return fields, files, True
    raw = await request.body()
    if not raw.strip():
        raise InvalidParameter("body", "the request needs a body: JSON (Content-Type: application/json) or a form")
    try:
        data = json.loads(raw)
    except ValueError as e:
        raise InvalidParameter("body", f"the request body is not valid JSON ({e})") from None
    if not isinstance(data, dict):
        raise InvalidParameter("body", "the request body must be a JSON object")
    return data, {}, False


def parse(model: type[BaseModel], data: dict, form: bool):
    """A JSON body is validated as its JSON Schema reads ("5" is not a number); a form's values are all text."""
    if form:
        data = {name: _form_value(model, name, value) for name, value in data.items()}
    try:
        return model.model_validate(data, strict=not form)
    except ValidationError as e:
        first = e.errors()[0]
        loc = first.get("loc", ()) or ("body",)
        # 'q' and its indices (q[1]); pydantic also names the union member it tried (q.str), which clients never wrote
        param = str(loc[0]) + "".join(f"[{p}]" for p in loc[1:] if isinstance(p, int))
        if first.get("type") == "missing":
            raise InvalidParameter(param, "is required") from None
        raise InvalidParameter(param, first.get("msg", "invalid value")) from None


def _form_value(model: type[BaseModel], name: str, value):
    """A form's text as its field's JSON Schema type reads it: "3.0" is the integer 3; a boolean is "true" or
    "false" (as clients write one), not pydantic's "1", "yes" or "on"."""
    field = model.model_fields.get(name)
    kind = field.annotation if field is not None else None
    if kind is int:
        return _form_number(value)
    if kind is bool and isinstance(value, str):
        if value not in ("true", "false"):
            raise InvalidParameter(name, f"must be true or false, got '{value}'")
        return value == "true"
    return value


def _form_number(value):
    """A form's "3.0" for an integer field is 3, as JSON Schema reads 3.0 (pydantic reads only "3")."""
    try:
        number = Decimal(value) if isinstance(value, str) else None
    except ArithmeticError:
        return value
    return int(number) if number is not None and number.is_finite() and number == number.to_integral_value() else value
