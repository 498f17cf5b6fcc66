"""Typed exceptions for reelfarm's gRPC status codes.

Every exception carries the server's message, which names the field, the value and
what to change, e.g. ``upscale.scale is 5; give 2, 3 or 4``.
"""

import grpc


class ReelfarmError(Exception):
    """Base class: ``code`` is the grpc.StatusCode, ``message`` the server's text."""

    def __init__(self, code, message):
        super().__init__(f"{code.name}: {message}")
        self.code = code
        self.message = message


class InvalidSpec(ReelfarmError):
    """INVALID_ARGUMENT: the spec is wrong; the message names the field."""


class NotFound(ReelfarmError):
    """NOT_FOUND: an input, model, job or worker does not exist."""


class AlreadyExists(ReelfarmError):
    """ALREADY_EXISTS: e.g. the output exists and overwrite was not set."""


class PermissionDenied(ReelfarmError):
    """PERMISSION_DENIED: e.g. a path outside the storage root."""


class FailedPrecondition(ReelfarmError):
    """FAILED_PRECONDITION: e.g. an input that is not a readable video."""


class QueueFull(ReelfarmError):
    """RESOURCE_EXHAUSTED: a queue limit of the farm or the project was reached."""


class Unavailable(ReelfarmError):
    """UNAVAILABLE or DEADLINE_EXCEEDED: the server cannot be reached."""


class Unimplemented(ReelfarmError):
    """UNIMPLEMENTED: the server does not support this kind of job yet."""


class Unauthenticated(ReelfarmError):
    """UNAUTHENTICATED: a missing or wrong token."""


class JobFailed(ReelfarmError):
    """Raised by Job.wait(raise_on_failure=True) when the job failed or was cancelled."""


_BY_CODE = {
    grpc.StatusCode.INVALID_ARGUMENT: InvalidSpec,
    grpc.StatusCode.NOT_FOUND: NotFound,
    grpc.StatusCode.ALREADY_EXISTS: AlreadyExists,
    grpc.StatusCode.PERMISSION_DENIED: PermissionDenied,
    grpc.StatusCode.FAILED_PRECONDITION: FailedPrecondition,
    grpc.StatusCode.RESOURCE_EXHAUSTED: QueueFull,
    grpc.StatusCode.UNAVAILABLE: Unavailable,
    grpc.StatusCode.DEADLINE_EXCEEDED: Unavailable,
    grpc.StatusCode.UNIMPLEMENTED: Unimplemented,
    grpc.StatusCode.UNAUTHENTICATED: Unauthenticated,
}


def from_rpc_error(err):
    """The typed exception for a grpc.RpcError."""
    code = err.code()
    return _BY_CODE.get(code, ReelfarmError)(code, err.details() or "")
