"""Stack engines: apply a Pulumi program to the cloud and return a checkpoint.

Two engines, one interface: `pulumi` (the Automation API, needs the Pulumi CLI
on PATH; what production uses) and `embedded` (runs the program in-process
through the Pulumi SDK's mock runtime and applies each resource with boto3;
for the embedded cloud). `select_engine` implements `--engine auto`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from rollback.models import Checkpoint


@dataclass(frozen=True)
class Change:
    """One planned or applied change of a resource."""

    urn: str
    type: str
    op: str  # create | update | replace | delete | same
    diff: tuple[str, ...] = ()  # property names that differ


@dataclass(frozen=True)
class StackConfig:
    """A stack's config as Pulumi keeps it: `project:key` -> value, secrets encrypted."""

    # Top-level scalars are their literal text; maps and lists are objects whose
    # nested `{"secure": ciphertext}` leaves are secrets (see engine/stack_file.py).
    values: dict[str, Any] = field(default_factory=dict)
    secrets: dict[str, str] = field(default_factory=dict)  # key -> ciphertext ("secure:" value)
    encryption_salt: str | None = None
    secrets_provider: str | None = None  # `secretsprovider:` (None: the backend's default)
    encrypted_key: str | None = None  # `encryptedkey:` of a cloud KMS / Vault provider
    source: str | None = field(default=None, repr=False)  # the stack file's text, as written


class StackEngine(Protocol):
    name: str

    def up(self, program_dir: Path, stack: str, config: StackConfig) -> Checkpoint:
        """Apply the program; return the resulting checkpoint (also kept as the stack state)."""
        ...

    def preview(self, program_dir: Path, stack: str, config: StackConfig) -> list[Change]:
        """The changes `up` would make; changes nothing."""
        ...

    def export(self, stack: str) -> Checkpoint:
        """The stack's current checkpoint; raises NotFound when the stack has none."""
        ...

    def outputs(self, stack: str) -> dict[str, Any]:
        """The stack's outputs (plain values; secrets stay masked)."""
        ...
