"""migrate: move the database schema to the target release's revision.

The release records a migration command template such as
`alembic downgrade {revision}`. It is split with shlex and run without a
shell; `{revision}` is filled in per argument, so a revision can never add
arguments. The database URL reaches the command only through the environment
variable the settings name (`database_url_env`): never on its command line,
in evidence, logs or errors, where it appears masked.

Verify reads the revision back from the database (Alembic's `alembic_version`
table through SQLAlchemy), not from the command's output.
"""

from __future__ import annotations

import logging
import os
import re
import shlex
import subprocess
from collections.abc import Callable, Iterable, Mapping
from typing import Any

from rollback.errors import CheckFailed, UsageError
from rollback.models import Evidence, StepDescription
from rollback.steps import Applied, evidence
from rollback.waiting import Timing

log = logging.getLogger(__name__)

BASE = "base"  # Alembic's name for "no revision": an empty alembic_version table
_REVISION = re.compile(r"^[A-Za-z0-9_.@:+,-]+$")
_URL_PASSWORD = re.compile(r"(?P<head>[A-Za-z][A-Za-z0-9+.-]*://[^:/@\s]*:)[^@\s]+(?=@)")
_TAIL_LINES = 20
_TAIL_CHARS = 2000

RevisionReader = Callable[[], str | None]


def require_sqlalchemy(what: str) -> None:
    """ConfigError (exit 2) naming the extra to install when SQLAlchemy or psycopg is missing."""
    try:
        import psycopg  # noqa: F401
        import sqlalchemy  # noqa: F401
    except ImportError as exc:
        from rollback.errors import ConfigError

        raise ConfigError(
            f"{what} needs SQLAlchemy and psycopg; install them with "
            "`pip install 'rollback[postgres]'`.",
            extra="postgres",
        ) from exc


def engine_url(url: str) -> str:
    """The URL SQLAlchemy gets: `postgresql://` means psycopg2 to it, we ship psycopg (v3)."""
    for scheme in ("postgresql://", "postgres://"):
        if url.startswith(scheme):
            return "postgresql+psycopg://" + url[len(scheme) :]
    return url


def database_label(url: str) -> str:
    """Which database, without user, password or path: `postgresql on db.internal:5432`."""
    try:
        from sqlalchemy.engine import make_url

        parsed = make_url(url)
    except Exception:  # not a URL SQLAlchemy parses: say nothing that could leak
        return "unparsable database URL"
    where = f"{parsed.host}:{parsed.port}" if parsed.port else parsed.host
    return f"{parsed.get_backend_name()} on {where}" if where else parsed.get_backend_name()


def mask_secrets(text: str, secrets: Iterable[str]) -> str:
    """Replace each secret (and the password of any `scheme://user:password@` URL) by `***`."""
    for secret in sorted({s for s in secrets if s}, key=len, reverse=True):
        text = text.replace(secret, "***")
    return _URL_PASSWORD.sub(r"\g<head>***", text)


def database_url(database_url_env: str, environ: Mapping[str, str] | None = None) -> str:
    """The URL held by the variable `database_url_env`; raises UsageError when unset."""
    url = (os.environ if environ is None else environ).get(database_url_env, "")
    if not url:
        raise UsageError(
            f"environment variable {database_url_env} is not set; it must hold the "
            "database URL the migration and checks use.",
            variable=database_url_env,
        )
    return url


def url_secrets(url: str) -> list[str]:
    """The strings to mask for `url`: the URL itself and its password."""
    secrets = [url]
    try:
        from sqlalchemy.engine import make_url

        password = make_url(url).password
        if password:
            secrets.append(str(password))
    except Exception:  # unparsable URL: the whole URL is still masked
        pass
    return secrets


class AlembicRevision:
    """Reads the schema revision from `alembic_version` (None when at base)."""

    def __init__(self, database_url_env: str, environ: Mapping[str, str] | None = None) -> None:
        self.database_url_env = database_url_env
        self.environ = environ

    def __call__(self) -> str | None:
        """The revision, or `a,b` for several heads; None for an empty or missing table.

        Raises CheckFailed (with the URL masked) when the database cannot be read.
        """
        require_sqlalchemy("reading the schema revision")
        import sqlalchemy as sa

        url = database_url(self.database_url_env, self.environ)
        engine = sa.create_engine(engine_url(url), poolclass=sa.pool.NullPool)
        try:
            with engine.connect() as conn:
                if not sa.inspect(conn).has_table("alembic_version"):
                    return None
                rows = conn.execute(sa.text("SELECT version_num FROM alembic_version")).all()
        except sa.exc.SQLAlchemyError as exc:
            raise CheckFailed(
                f"cannot read the schema revision from the {database_label(url)} database: "
                f"{mask_secrets(str(exc), url_secrets(url))}"
            ) from exc
        finally:
            engine.dispose()
        revisions = sorted(str(r[0]) for r in rows)
        return ",".join(revisions) if revisions else None


def render_command(template: str, revision: str) -> list[str]:
    """Split `template` with shlex and put `revision` into each `{revision}`.

    Raises UsageError for a template without `{revision}` or an odd revision.
    """
    if not _REVISION.match(revision):
        raise UsageError(f"schema revision {revision!r} is not a migration revision name.")
    try:
        words = shlex.split(template)
    except ValueError as exc:
        raise UsageError(f"migration command {template!r} cannot be split: {exc}.") from exc
    if not words or not any("{revision}" in w for w in words):
        raise UsageError(
            f"migration command {template!r} must contain {{revision}}, "
            "e.g. `alembic downgrade {revision}`."
        )
    return [w.replace("{revision}", revision) for w in words]


def _same(revision: str | None, target: str) -> bool:
    return (revision or BASE) == target


def _tail(output: str) -> str:
    lines = output.strip().splitlines()[-_TAIL_LINES:]
    return "\n".join(lines)[-_TAIL_CHARS:]


class MigrateStep:
    """Run the recorded migration command to `target_revision`; read the revision back."""

    kind = "migrate"

    def __init__(
        self,
        command_template: str,
        target_revision: str,
        database_url_env: str,
        current_revision_reader: RevisionReader | None,
        timeout_s: float,
        timing: Timing,
        *,
        upgrade_template: str | None = None,
        cwd: str | None = None,
        environ: Mapping[str, str] | None = None,
    ) -> None:
        """`upgrade_template` (e.g. `alembic upgrade {revision}`) lets compensation
        return to the prior revision. `current_revision_reader` defaults to
        AlembicRevision over the same URL. `environ` defaults to os.environ.
        """
        self.command = render_command(command_template, target_revision)
        self.command_template = command_template
        self.target_revision = target_revision
        self.database_url_env = database_url_env
        self.read_revision: RevisionReader = current_revision_reader or AlembicRevision(
            database_url_env, environ
        )
        self.timeout_s = timeout_s
        self.timing = timing
        self.upgrade_template = upgrade_template
        if upgrade_template is not None:
            render_command(upgrade_template, target_revision)  # refuse a bad template now
        self.cwd = cwd
        self.environ = environ

    def describe(self) -> StepDescription:
        compensation = (
            f"compensation runs `{self.upgrade_template}` with the prior revision"
            if self.upgrade_template
            else "no upgrade command is recorded: this step cannot be compensated"
        )
        return StepDescription(
            kind=self.kind,
            summary=f"migrate the database schema to revision {self.target_revision}",
            changes={
                "command": shlex.join(self.command),
                "target_revision": self.target_revision,
                "database_url_env": self.database_url_env,
                "upgrade_command": self.upgrade_template,
            },
            reason=f"the target release runs schema revision {self.target_revision}; {compensation}",
            expected_seconds=min(self.timeout_s, 120.0),
        )

    def apply(self) -> Applied:
        """Run the command unless the database already reads the target revision.

        Raises CheckFailed with the command's masked output tail when it fails
        or times out; UsageError when the URL variable is unset or the command
        is not found.
        """
        before = self.read_revision()
        prior = {"revision": before or BASE, "target_revision": self.target_revision}
        if _same(before, self.target_revision):
            return Applied(changed=False, prior=prior, detail={"revision": before or BASE})
        result = self._run(self.command)
        return Applied(
            changed=True,
            prior=prior,
            detail={"revision_before": before or BASE, **result},
        )

    def verify(self) -> list[Evidence]:
        url = database_url(self.database_url_env, self.environ)
        revision = self.read_revision()
        ok = _same(revision, self.target_revision)
        return [
            evidence(
                "sql:SELECT version_num FROM alembic_version",
                {
                    "revision": revision or BASE,
                    "expected": self.target_revision,
                    "database": database_label(url),
                    "database_url_env": self.database_url_env,
                },
                ok,
                "" if ok else f"database is at {revision or BASE}, not {self.target_revision}",
            )
        ]

    def compensate(self, prior: dict[str, Any]) -> None:
        """Run the upgrade command back to `prior["revision"]`; CheckFailed when none is recorded."""
        back_to = str(prior.get("revision") or BASE)
        if _same(self.read_revision(), back_to):
            return
        if not self.upgrade_template:
            raise CheckFailed(
                f"cannot compensate the migration: no upgrade command is recorded with the "
                f"release; the database stays at {self.target_revision}. Upgrade it to "
                f"{back_to} by hand.",
                revision=self.target_revision,
                wanted=back_to,
            )
        self._run(render_command(self.upgrade_template, back_to))
        after = self.read_revision()
        if not _same(after, back_to):
            raise CheckFailed(
                f"the upgrade command ran but the database reads revision {after or BASE}, "
                f"not {back_to}.",
                revision=after,
            )

    def _run(self, argv: list[str]) -> dict[str, Any]:
        env = dict(os.environ if self.environ is None else self.environ)
        url = database_url(self.database_url_env, env)
        secrets = url_secrets(url)
        if any(s in word for s in secrets for word in argv):
            raise UsageError(
                "the migration command carries the database URL; it must read it from "
                f"the environment variable {self.database_url_env}."
            )
        shown = shlex.join(argv)
        log.info("running migration command: %s", shown)
        started = self.timing.clock()
        try:
            done = subprocess.run(
                argv,
                env=env,
                cwd=self.cwd,
                capture_output=True,
                text=True,
                timeout=self.timeout_s,
                check=False,
            )
        except FileNotFoundError as exc:
            raise UsageError(
                f"migration command {argv[0]!r} was not found; check the release's "
                "migration command and PATH.",
                command=shown,
            ) from exc
        except subprocess.TimeoutExpired as exc:
            output = _decode(exc.stdout) + _decode(exc.stderr)
            raise CheckFailed(
                f"migration command `{shown}` did not finish in {self.timeout_s:.0f}s; "
                f"last output:\n{mask_secrets(_tail(output), secrets)}",
                command=shown,
            ) from exc
        tail = mask_secrets(_tail(done.stdout + done.stderr), secrets)
        if done.returncode != 0:
            raise CheckFailed(
                f"migration command `{shown}` failed with exit code {done.returncode}; "
                f"last output:\n{tail}",
                command=shown,
                exit_status=done.returncode,
                output_tail=tail,
            )
        return {
            "command": shown,
            "exit_status": done.returncode,
            "seconds": round(self.timing.clock() - started, 3),
            "output_tail": tail,
        }


def _decode(output: str | bytes | None) -> str:
    if output is None:
        return ""
    return output.decode(errors="replace") if isinstance(output, bytes) else output
