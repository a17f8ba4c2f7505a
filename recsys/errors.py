"""One error hierarchy; each class carries the HTTP status the server answers with.

The CLI prints ``str(error)`` as one red line and exits 1; the HTTP adapter maps ``status``.
"""


class RecsysError(Exception):
    """A domain error: bad input, unknown id, missing model. Never a bug."""

    status: int = 400
    code: str = "error"


class InvalidInput(RecsysError):
    status = 400
    code = "invalid_input"


class NotFound(RecsysError):
    status = 404
    code = "not_found"


class Conflict(RecsysError):
    status = 409
    code = "conflict"


class NotTrained(RecsysError):
    """No model of the asked kind is published yet."""

    status = 409
    code = "not_trained"


class ConfigError(RecsysError):
    status = 500
    code = "config_error"


class StoreError(RecsysError):
    status = 503
    code = "store_unavailable"


class IntegrityError(RecsysError):
    """A model artifact fails its checksum: tampered or truncated."""

    status = 500
    code = "model_corrupt"
