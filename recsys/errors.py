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


class MissingDependency(RecsysError):
    """An optional part this request needs is not installed (e.g. pyspark or Java for Spark
    ALS): the message names what to install."""

    status = 500
    code = "missing_dependency"


class StoreError(RecsysError):
    status = 503
    code = "store_unavailable"


class IntegrityError(RecsysError):
    """A model artifact fails its checksum: tampered or truncated."""

    status = 500
    code = "model_corrupt"


class DiskFull(RecsysError):
    """The disk filled up while writing: nothing half-written is kept (batches committed before
    it and the previous model version are)."""

    status = 507
    code = "disk_full"


_FULL_TEXTS = ("database or disk is full", "no space left on device", "could not extend file")


def disk_full(exc: BaseException, path: object = None) -> DiskFull | None:
    """A DiskFull naming the file being written when `exc` (or an exception it was raised from)
    means the disk filled up: OSError ENOSPC/EDQUOT (numpy, json), SQLite's SQLITE_FULL,
    PostgreSQL's "could not extend file", faiss's "write error in <path>"; else None."""
    import errno
    import re

    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        text = str(current)
        if isinstance(current, OSError) and current.errno in (errno.ENOSPC, errno.EDQUOT):
            where = current.filename or path
            return DiskFull(f"disk full while writing {where or 'to the disk'}")
        if any(marker in text.lower() for marker in _FULL_TEXTS):
            return DiskFull(f"disk full while writing {path or 'to the store'}")
        if found := re.search(r"write error in (\S+?):", text):  # faiss: "... 4051 != 2"
            return DiskFull(f"cannot write {found.group(1)}: the disk is full or not writable")
        current = current.__cause__ or current.__context__
    return None
