"""Domain errors with stable machine codes; adapters map them to HTTP statuses in one place."""

from __future__ import annotations


class DomainError(Exception):
    """A command refused by a rule. `code` is stable and public; `field` names the input at fault."""

    code: str = "rule-violated"
    kind: str = "unprocessable"

    def __init__(self, message: str, *, code: str | None = None, field: str | None = None) -> None:
        super().__init__(message)
        if code is not None:
            self.code = code
        self.field = field


class NotFound(DomainError):
    code = "not-found"
    kind = "not-found"


class Conflict(DomainError):
    """The command contradicts the current state (409), as opposed to invalid input (422)."""

    code = "conflict"
    kind = "conflict"


class PreconditionFailed(DomainError):
    """The client's If-Match version is not the aggregate's current version (412)."""

    code = "version-mismatch"
    kind = "precondition-failed"
