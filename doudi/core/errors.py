"""The one error type for bad input, shared by the CLI, the services and the gateway."""

from __future__ import annotations


class InvalidInput(ValueError):
    """Input that breaks a rule; ``field`` names where, as a path like ``visits[0].items[1].class``.

    The CLI prints it as one line; gRPC maps it to INVALID_ARGUMENT with a
    ``google.rpc.BadRequest`` field violation; the gateway to a problem+json 422.
    """

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}" if field else message)
        self.field = field
        self.message = message

    def under(self, prefix: str) -> InvalidInput:
        """The same error with its field placed under ``prefix`` (``visits[0]`` + ``date``)."""
        if not prefix:
            return self
        if not self.field:
            return InvalidInput(prefix, self.message)
        joiner = "" if self.field.startswith("[") else "."
        return InvalidInput(f"{prefix}{joiner}{self.field}", self.message)


class PolicyPackError(ValueError):
    """A policy pack that cannot be loaded; names the file and the rule's path inside it."""

    def __init__(self, file: str, path: str, message: str) -> None:
        where = f"{file}: {path}" if path else file
        super().__init__(f"{where}: {message}")
        self.file = file
        self.path = path
        self.message = message
