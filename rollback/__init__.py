"""rollback: take a Pulumi-managed deployment back to a known-good release.

The package is a library with a thin click front end (`rollback.cli`). Core
modules return data and raise `rollback.errors.RollbackError` subclasses; they
never print and never import click. Build the pieces through
`rollback.cli.factory.Factory` or pass your own (a boto3 session, a `Store`).
"""

__version__ = "0.1.0"
