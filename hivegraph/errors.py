"""The hivegraph exception tree.

Developer mistakes (a broken configuration) are kept apart from runtime
failures (a backend that does not answer, a model that replies nonsense)::

    HivegraphError
    ├── ConfigError                   broken configuration or unknown backend name
    ├── BackendUnavailableError       a store or server could not be reached
    ├── ModelError
    │   ├── ModelAPIError             the model endpoint failed (model_name)
    │   │   └── ModelHTTPError        ... with an HTTP status (status_code, body)
    │   ├── UnexpectedModelOutput     the reply never validated (body, errors)
    │   └── ModelServerError          preparing or serving the local model failed
    ├── EmbeddingError                an embedder failed or its files are corrupt
    ├── MemoryStoreError
    │   ├── RecordNotFoundError       an op named a record that does not exist
    │   ├── OpNotFoundError           an undo named an op that was never journaled
    │   ├── ScopeViolationError       an op crossed the scope it was given
    │   │   └── KeyScopeError         an idempotency key or run id belongs to another scope
    │   ├── ConflictError             the record changed since the decision saw it
    │   ├── InvalidInputError         a value cannot be stored (field)
    │   ├── JournalSchemaError        the journal was written by a newer hivegraph
    │   └── DanglingEdgeError         a graph edge names a node that is not current in its scope (edge_id, node_id)
    ├── AgentError
    │   ├── InvalidDecisionError      a memory-manager decision could not be applied
    │   └── PolicyViolationError      an agent reached for memory its policy does not allow
    └── GraphError                    a team graph was built or run wrongly

`RetryRequested` is a control signal, not an error: a validator raises it to ask
the model for another try with feedback.
"""

from __future__ import annotations

from typing import Any


class HivegraphError(Exception):
    """Root of every error hivegraph raises on purpose."""


class ConfigError(HivegraphError):
    """The configuration is invalid: a wrong value, an unknown backend, a broken file."""

    def __init__(self, message: str, *, field: str | None = None) -> None:
        super().__init__(message)
        self.field = field
        """Dotted path of the offending setting, when one is known."""


class BackendUnavailableError(HivegraphError):
    """A backend (store, model server, embedding server) could not be reached."""

    def __init__(self, backend: str, message: str) -> None:
        super().__init__(f"{backend}: {message}")
        self.backend = backend


class ModelError(HivegraphError):
    """Root of the chat-model errors."""


class ModelAPIError(ModelError):
    """The model endpoint failed to produce a reply."""

    def __init__(self, model_name: str, message: str) -> None:
        super().__init__(f"model {model_name!r}: {message}")
        self.model_name = model_name


class ModelHTTPError(ModelAPIError):
    """The model endpoint answered with an HTTP error status."""

    def __init__(self, model_name: str, status_code: int, body: object) -> None:
        super().__init__(model_name, f"HTTP {status_code}: {body!r:.500}")
        self.status_code = status_code
        self.body = body


class UnexpectedModelOutput(ModelError):  # noqa: N818 - the name pydantic-ai users know
    """The model's reply did not validate, even after the allowed retries.

    `body` holds the last raw reply, so nothing the model said is lost.
    """

    def __init__(self, message: str, *, body: str, errors: list[str] | None = None) -> None:
        super().__init__(message)
        self.body = body
        self.errors = errors or []


class ModelServerError(ModelError):
    """Preparing, starting or stopping the local model server failed."""


class EmbeddingError(HivegraphError):
    """An embedder failed, or its model files did not pass their checksum."""


class MemoryStoreError(HivegraphError):
    """Root of the memory-layer errors."""


class RecordNotFoundError(MemoryStoreError):
    """An operation named a record that is not (or no longer) current."""

    def __init__(self, record_id: str, message: str | None = None) -> None:
        super().__init__(message or f"no current memory record with id {record_id!r}")
        self.record_id = record_id


class OpNotFoundError(MemoryStoreError):
    """An undo named an op the journal does not hold."""

    def __init__(self, op_id: str) -> None:
        super().__init__(f"no journaled op with id {op_id!r}")
        self.op_id = op_id


class ScopeViolationError(MemoryStoreError):
    """An operation touched a record outside the scope it was given.

    The message names the caller's scope only, never the owner's.
    """

    def __init__(self, record_id: str, message: str) -> None:
        super().__init__(f"record {record_id!r}: {message}")
        self.record_id = record_id


class KeyScopeError(MemoryStoreError):
    """An idempotency key or run id was first used by another scope; nothing of that scope is named."""

    def __init__(self, what: str, key: str) -> None:
        super().__init__(f"{what} {key!r} belongs to another scope; choose another")
        self.what = what
        self.key = key


class ConflictError(MemoryStoreError):
    """An op expected a version of a record that is no longer the current one (a concurrent writer won)."""

    def __init__(self, record_id: str, message: str) -> None:
        super().__init__(f"conflict on record {record_id!r}: {message}")
        self.record_id = record_id


class InvalidInputError(MemoryStoreError):
    """A value cannot be stored: not finite, not UTF-8, too large, or of the wrong type."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}")
        self.field = field
        """Where the value was (`metadata.score`, `text`, `scope.user_id`)."""


class JournalSchemaError(MemoryStoreError):
    """The journal's schema version is newer than this hivegraph understands."""


class DanglingEdgeError(MemoryStoreError):
    """A graph edge names an end node that is missing, retired, or outside the edge's scope (not told apart)."""

    def __init__(self, edge_id: str, node_id: str, scope: object) -> None:
        super().__init__(f"edge {edge_id!r}: no current node {node_id!r} in scope {scope}")
        self.edge_id = edge_id
        self.node_id = node_id


class AgentError(HivegraphError):
    """Root of the agent errors."""


class InvalidDecisionError(AgentError):
    """A memory-manager decision referred to something it may not touch."""


class PolicyViolationError(AgentError):
    """An agent tried to read or write memory its policy does not allow (nothing was changed)."""


class GraphError(HivegraphError):
    """A team graph was built or run wrongly."""


class RetryRequested(Exception):  # noqa: N818 - a control signal, not an error
    """Ask the model to try again; the message is fed back to it."""

    def __init__(self, feedback: str, *, detail: Any = None) -> None:
        super().__init__(feedback)
        self.feedback = feedback
        self.detail = detail
