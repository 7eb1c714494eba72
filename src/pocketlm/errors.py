"""The errors pocketlm raises on purpose.

Every error a user can cause is one of these: it names what was wrong and how to
fix it. The HTTP layer maps each class to a status code (``http_status``) and to
OpenAI's error shape (``type``, ``param``, ``code``), so the engine and the CLI
never need to know about HTTP.
"""

from __future__ import annotations


class PocketLMError(Exception):
    """Base class: a message meant for the user, never a traceback."""

    http_status = 500
    type = "server_error"
    code: str | None = None

    def __init__(self, message: str, *, param: str | None = None):
        super().__init__(message)
        self.message = message
        self.param = param


class InvalidParameter(PocketLMError):
    """A request parameter has a bad value; ``param`` names it."""

    http_status = 400
    type = "invalid_request_error"
    code = "invalid_parameter"

    def __init__(self, param: str, message: str):
        super().__init__(f"{param}: {message}", param=param)


class ContextLengthExceeded(InvalidParameter):
    """The prompt does not fit in the model's context window."""

    code = "context_length_exceeded"


class DataUnavailable(InvalidParameter):
    """A known dataset name whose files are not on this machine and cannot be fetched now."""

    http_status = 503
    type = "server_error"
    code = "data_unavailable"


class Unauthorized(PocketLMError):
    """A missing or wrong API key."""

    http_status = 401
    type = "authentication_error"
    code = "invalid_api_key"


class ModelNotFound(PocketLMError):
    """The model name resolves to nothing available on this machine."""

    http_status = 404
    type = "invalid_request_error"
    code = "model_not_found"

    def __init__(self, message: str):
        super().__init__(message, param="model")


class ModelLoadError(PocketLMError):
    """The model files exist but cannot be loaded (corrupt, truncated, unsupported)."""

    http_status = 400
    type = "invalid_request_error"
    code = "model_load_error"

    def __init__(self, message: str):
        super().__init__(message, param="model")


class DiskFull(PocketLMError):
    """A file could not be written for want of disk space; nothing half-written was kept."""

    http_status = 507  # Insufficient Storage
    type = "server_error"
    code = "disk_full"


class Overloaded(PocketLMError):
    """Every slot is busy and the queue is full: retry later."""

    http_status = 503
    type = "overloaded_error"
    code = "queue_full"

    def __init__(self, message: str, retry_after: float = 1.0):
        super().__init__(message)
        self.retry_after = retry_after


class EngineStopped(PocketLMError):
    """The engine is shutting down and takes no new requests."""

    http_status = 503
    type = "overloaded_error"
    code = "shutting_down"


class GenerationFailed(PocketLMError):
    """The backend failed while generating; the requests in flight end with this error."""

    http_status = 500
    type = "server_error"
    code = "generation_failed"
