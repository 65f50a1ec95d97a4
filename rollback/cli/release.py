"""`rollback release ...`: record, list, show, verify, mark, changelog, prune."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click

from rollback.cli.params import WholeNumber
from rollback.cli.render import emit, table


def _registry(ctx: click.Context) -> Any:
    from rollback.releases import Registry

    factory = ctx.find_root().obj
    return Registry(factory.store(), factory.settings.stack)


@click.group()
def release() -> None:
    """Record, list, verify and mark releases of the stack."""


@release.command()
@click.argument("version")
@click.option(
    "--artifact",
    required=True,
    type=click.Path(path_type=Path),
    help="The built application artifact.",
)
@click.option(
    "--repo",
    default=".",
    show_default=True,
    type=click.Path(path_type=Path),
    help="The IaC git repository (a Pulumi project).",
)
@click.option("--commit", help="Commit to release  [default: HEAD]")
@click.option("--allow-dirty", is_flag=True, help="Record even with uncommitted changes.")
@click.option(
    "--color",
    type=click.Choice(["blue", "green"]),
    help="The live colour  [default: the topology's]",
)
@click.option(
    "--schema-revision",
    help="The database schema revision this release runs (e.g. an Alembic revision).",
)
@click.option(
    "--migration-command",
    help="Command template that migrates to {revision}, e.g. 'alembic downgrade {revision}'.",
)
@click.option(
    "--integrity-checks",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="JSON list of SQL checks run after a restore or migration.",
)
@click.option(
    "--smoke-command", help="Command run after a rollback to this release (exit 0 passes)."
)
@click.pass_context
def record(
    ctx: click.Context,
    version: str,
    artifact: Path,
    repo: Path,
    commit: str | None,
    allow_dirty: bool,
    color: str | None,
    schema_revision: str | None,
    migration_command: str | None,
    integrity_checks: Path | None,
    smoke_command: str | None,
) -> None:
    """Record VERSION: the artifact, the stack's checkpoint, config, topology and a
    database snapshot; tag the commit vVERSION.

    Nothing is written (and no snapshot taken) unless every check passes.
    """
    from rollback import stacks
    from rollback.config import read_small_file
    from rollback.releases import Attachments, integrity_checks_from

    if migration_command and not schema_revision:
        # The command migrates *to* a revision; without one recorded it has nothing to aim at.
        raise click.UsageError(
            "--migration-command needs --schema-revision: the revision this release runs, "
            "which a rollback to it migrates back to."
        )
    factory = ctx.find_root().obj
    registry = factory.registry()
    registry.check_record(version, artifact, repo, commit=commit, allow_dirty=allow_dirty)
    from rollback.preflight import check_record

    check_record(factory.store(), repo, factory.settings.stack)  # before the snapshot
    checks = (
        integrity_checks_from(read_small_file(integrity_checks, "integrity checks file"))
        if integrity_checks
        else ()
    )
    state: dict[str, Any] = {}
    if (repo / "Pulumi.yaml").exists():
        from rollback.aws.rds import Rds

        engine = factory.engine(repo)
        project = stacks.load_project(repo)
        rds = Rds(factory.clients()("rds"))
        state = (
            stacks.release_state(engine, project, factory.settings.stack_name, version, rds) or {}
        )
    if color:
        state["color"] = color
    attachments = Attachments(
        schema_revision=schema_revision,
        migration_command=migration_command,
        integrity_checks=checks,
        smoke_command=smoke_command,
        **state,
    )
    view = registry.record(
        version, artifact, repo, commit=commit, allow_dirty=allow_dirty, attachments=attachments
    )
    emit(
        ctx,
        view,
        lambda v: (
            f"recorded {v.release.tag} of {v.release.stack} at {v.release.commit[:12]} (artifact {v.release.artifact.sha256[:12]}, manifest {v.manifest_sha256[:12]})"
        ),
    )


@release.command(name="list")
@click.pass_context
def list_(ctx: click.Context) -> None:
    """Releases, newest first, with status and colour."""
    views = _registry(ctx).views()
    rows = [
        (
            "*" if v.current else "",
            v.release.version,
            v.status,
            v.release.color or "-",
            v.release.created_at,
            v.release.commit[:12],
        )
        for v in views
    ]
    emit(
        ctx,
        {"releases": views},
        table(rows, ["", "VERSION", "STATUS", "COLOUR", "RECORDED", "COMMIT"])
        if rows
        else f"{ctx.find_root().obj.settings.stack} has no releases in {ctx.find_root().obj.store().url}",
    )


@release.command()
@click.argument("version")
@click.pass_context
def show(ctx: click.Context, version: str) -> None:
    """One release: manifest, blobs, status history."""
    view = _registry(ctx).show(version)
    emit(ctx, view, _show_text)


def _show_text(view: Any) -> str:
    r = view.release
    lines = [
        f"release {r.version} of {r.stack}{'  (current)' if view.current else ''}",
        f"  status      {view.status}",
        f"  commit      {r.commit}  tag {r.tag}",
        f"  repo        {r.repo}",
        f"  recorded    {r.created_at} by {r.created_by}",
        f"  artifact    {r.artifact_name}  sha256 {r.artifact.sha256}  {r.artifact.size} bytes",
        f"  manifest    sha256 {view.manifest_sha256}",
    ]
    for name in ("checkpoint", "config", "topology"):
        ref = getattr(r, name)
        if ref:
            lines.append(f"  {name:<11} sha256 {ref.sha256}")
    if r.db_snapshot_id:
        lines.append(f"  db snapshot {r.db_snapshot_id} ({r.db_snapshot_at})")
    lines.append("  history")
    lines += [f"    {h.at}  {h.status:<9} by {h.by}: {h.reason}" for h in view.history]
    return "\n".join(lines)


@release.command()
@click.argument("version")
@click.option(
    "--repo",
    type=click.Path(path_type=Path),
    help="The IaC repository  [default: the one recorded]",
)
@click.pass_context
def verify(ctx: click.Context, version: str, repo: Path | None) -> None:
    """Re-hash every blob of VERSION and check its tag (exit 4 on a mismatch)."""
    from rollback import release_upkeep

    result = release_upkeep.verify(_registry(ctx), version, repo)
    emit(
        ctx,
        result,
        lambda r: "\n".join(
            [f"release {r.version}: every hash and the tag match"]
            + [f"  ok  {c['what']}" for c in r.checked]
        ),
    )


@release.command()
@click.argument("version")
@click.option("--stable", is_flag=True, help="Mark as known-good (a rollback target).")
@click.option("--bad", is_flag=True, help="Mark as bad (refused as a rollback target).")
@click.option("--candidate", is_flag=True, help="Back to candidate.")
@click.option("--reason", default="", help="Why; kept in the status history.")
@click.pass_context
def mark(
    ctx: click.Context, version: str, stable: bool, bad: bool, candidate: bool, reason: str
) -> None:
    """Mark VERSION stable or bad; the history of changes is kept."""
    chosen = [
        name for name, on in (("stable", stable), ("bad", bad), ("candidate", candidate)) if on
    ]
    if len(chosen) != 1:
        raise click.UsageError(
            "say exactly one of --stable, --bad or --candidate"
            + (f" (got --{' --'.join(chosen)})." if chosen else ".")
        )
    status = chosen[0]
    view = _registry(ctx).mark(version, status, reason or f"marked {status}")
    emit(ctx, view, lambda v: f"release {v.release.version} is now {v.status}")


@release.command()
@click.argument("from_version", metavar="FROM")
@click.argument("to_version", metavar="TO")
@click.option(
    "--repo",
    type=click.Path(path_type=Path),
    help="The IaC repository  [default: the one recorded]",
)
@click.pass_context
def changelog(ctx: click.Context, from_version: str, to_version: str, repo: Path | None) -> None:
    """Commits between two releases, breaking changes first."""
    from rollback import release_upkeep

    entries = release_upkeep.changelog(_registry(ctx), from_version, to_version, repo)
    lines = [
        f"{'BREAKING ' if e.breaking else ''}{e.commit[:12]} {e.subject} ({e.author})"
        for e in entries
    ]
    emit(
        ctx,
        {"from": from_version, "to": to_version, "commits": entries},
        "\n".join(lines) or "no commits between them",
    )


@release.command()
@click.option("--keep", required=True, type=WholeNumber(), help="Stable releases to keep.")
@click.option("--dry-run", is_flag=True, help="Say what would go; delete nothing.")
@click.pass_context
def prune(ctx: click.Context, keep: int, dry_run: bool) -> None:
    """Delete old releases and the blobs only they reference."""
    from rollback import release_upkeep

    result = release_upkeep.prune(_registry(ctx), keep, dry_run)
    verb = "would delete" if dry_run else "deleted"
    emit(
        ctx,
        result,
        lambda r: (
            f"{verb} {len(r.deleted)} release(s) {', '.join(r.deleted) or ''} and {len(r.deleted_blobs)} blob(s); kept {', '.join(r.kept)}"
        ),
    )
