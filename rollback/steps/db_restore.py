"""db-restore: put a release's RDS snapshot back under the live database's name.

The database is a DB instance or an Aurora DB cluster (the topology's
`db_kind`; `rollback.aws.databases` holds what differs: a cluster's restore
also creates its writer instance). Below, "instance" reads as either.
The snapshot is restored into a new instance `<id>-restore-<run>` carrying the
live instance's settings (a restore does not copy them by itself), the live
instance is renamed aside to `<id>-pre-<run>` and the restored one takes the
original identifier, so the endpoint the application uses stays the same.
Nothing is deleted: the previous instance is kept under its aside name.

How a restore is read back: describe_db_instances does not say which
snapshot an instance came from (neither on AWS nor in moto), so the restore
tags the new instance `rollback:restored-from=<snapshot>` and
`rollback:run=<run>`, and verify also requires the instance to have been
created after the snapshot was taken, which a renamed old instance cannot be.

Every sub-step reads the current names first, so a process that died between
the two renames continues where it stopped when apply runs again.

Rows prove the data (when the database URL is set, `rows`): before the swap,
apply counts the rows of every table in the restored copy (the snapshot's
content) and in the live instance (what the pre-restore snapshot holds), tags
the copy with the counts' digest (`rollback:rows-digest`) and reports, per
table, the rows the restore discards. Verify counts the rows at the original
identifier's database again and requires the digest to match: the database
users reach is the snapshot's content, not the one it replaced.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

from rollback.aws.databases import Database, databases
from rollback.aws.rds import Rds, rds_identifier
from rollback.datarows import InstanceRows, TableRows, observed_rows, rows_difference, rows_digest
from rollback.errors import AlreadyExists, CheckFailed, NotFound, RollbackError, UsageError
from rollback.models import Evidence, StepDescription
from rollback.steps import Applied, evidence
from rollback.steps.db_snapshot import RUN_TAG, pre_rollback_snapshot_id, snapshot_evidence
from rollback.waiting import Timing

RESTORED_FROM_TAG = "rollback:restored-from"
ROWS_DIGEST_TAG = "rollback:rows-digest"


def data_loss_window(snapshot_taken_at: datetime, now: datetime) -> timedelta:
    """The writes a restore loses: the time from the snapshot to `now` (never negative)."""
    return max(now - _aware(snapshot_taken_at), timedelta(0))


def describe_window(window: timedelta) -> str:
    """A window in words: `2d 3h 4m`, `5m 6s`."""
    seconds = int(window.total_seconds())
    days, seconds = divmod(seconds, 86400)
    hours, seconds = divmod(seconds, 3600)
    minutes, seconds = divmod(seconds, 60)
    parts = [
        f"{days}d" if days else "",
        f"{hours}h" if hours else "",
        f"{minutes}m" if minutes else "",
    ]
    if not days and not hours:
        parts.append(f"{seconds}s")
    return " ".join(p for p in parts if p)


def _aware(moment: datetime) -> datetime:
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def _parse_moment(value: datetime | str | None) -> datetime | None:
    if value is None or isinstance(value, datetime):
        return _aware(value) if value else None
    try:
        return _aware(datetime.fromisoformat(value))
    except ValueError as exc:
        raise UsageError(f"snapshot time {value!r} is not an ISO 8601 time.") from exc


class DbRestoreStep:
    """Restore `snapshot_id` under `instance_id`'s name, keeping the old instance aside."""

    kind = "db-restore"

    def __init__(
        self,
        rds: Rds,
        instance_id: str,
        snapshot_id: str,
        run_id: str,
        accept_data_loss: bool,
        snapshot_taken_at: datetime | str | None,
        pre_snapshot_id: str | None,
        timing: Timing,
        timeout_s: float = 7200.0,
        now: Callable[[], datetime] | None = None,
        rows: InstanceRows | None = None,
        db_kind: str = "instance",
    ) -> None:
        """`pre_snapshot_id` is the db-snapshot step's snapshot (None: the name that step
        gives it for this run): apply reads it back and refuses unless it is
        available and of this instance. `snapshot_taken_at`
        (the release's db_snapshot_at) dates the data-loss window; when None the
        snapshot's own creation time is read from RDS.
        """
        self.db = databases(rds, db_kind)
        self.instance_id = instance_id
        self.snapshot_id = snapshot_id
        self.run_id = run_id
        self.accept_data_loss = accept_data_loss
        self.snapshot_taken_at = _parse_moment(snapshot_taken_at)
        self.pre_snapshot_id = pre_snapshot_id or pre_rollback_snapshot_id(instance_id, run_id)
        self.timing = timing
        self.timeout_s = timeout_s
        self.now = now or (lambda: datetime.now(UTC))
        self.restore_id = rds_identifier(instance_id, "restore", run_id)
        self.aside_id = rds_identifier(instance_id, "pre", run_id)
        self.rows = rows if rows is not None and rows.configured() else None
        self.row_window: dict[str, Any] | None = None  # set by apply when rows are counted

    def describe(self) -> StepDescription:
        window = (
            describe_window(data_loss_window(self.snapshot_taken_at, self.now()))
            if self.snapshot_taken_at
            else "unknown until the snapshot is read"
        )
        return StepDescription(
            kind=self.kind,
            summary=(
                f"restore snapshot {self.snapshot_id} as {self.instance_id} (same endpoint); "
                f"the current instance is kept as {self.aside_id}"
            ),
            changes={
                "instance_id": self.instance_id,
                "db_kind": self.db.kind,
                "snapshot_id": self.snapshot_id,
                "restore_id": self.restore_id,
                "aside_id": self.aside_id,
                "snapshot_taken_at": self.snapshot_taken_at.isoformat()
                if self.snapshot_taken_at
                else None,
                "data_loss_window": window,
            },
            reason=(
                f"writes made after the snapshot are lost from the live database "
                f"(data-loss window {window}); they stay in {self.aside_id} and in "
                f"snapshot {self.pre_snapshot_id}. "
                + (
                    "The rows written since are counted per table just before the swap "
                    "(restored copy against the live database) and reported. "
                    if self.rows is not None
                    else "Set the database URL to count the rows written since. "
                )
                + "Needs accept_data_loss. Compensation renames the instances back; the "
                "restored copy is kept."
            ),
            expected_seconds=1800.0,
        )

    # apply

    def apply(self) -> Applied:
        """Restore, rename aside, rename into place; each part skipped when already done.

        Raises UsageError without accept_data_loss (the message gives the
        window), CheckFailed when the pre-restore snapshot does not verify,
        NotFound/UsageError for a missing or unavailable snapshot,
        AlreadyExists when a name it needs is taken, all before changing
        anything; CheckFailed describing the names when a later part fails.
        """
        self._refuse_without_consent()
        prior = self._prior()
        current = self.db.find(self.instance_id)
        if current is not None and self._is_restored(current):
            if current.status != "available":
                current = self.db.wait_available(self.instance_id, self.timeout_s, self.timing)
            self._part_way(self._names_follow)  # a run that died just after the swap
            return Applied(changed=False, prior=prior, detail=self._detail(current))

        pre = snapshot_evidence(self.db, self.pre_snapshot_id, {self.instance_id, self.aside_id})
        if not pre.ok:
            raise CheckFailed(
                f"refusing to restore {self.instance_id}: the pre-restore snapshot did not "
                f"verify ({pre.note}).",
                pre_snapshot_id=self.pre_snapshot_id,
            )
        source = self.db.find_snapshot(self.snapshot_id)
        if source is None:
            raise NotFound(
                f"DB snapshot {self.snapshot_id} does not exist.",
                snapshot_id=self.snapshot_id,
            )
        if source.status != "available":
            raise UsageError(
                f"snapshot {self.snapshot_id} is {source.status}, not available; wait for it "
                "or choose another release.",
                snapshot_id=self.snapshot_id,
            )
        restored = self.db.find(self.restore_id)
        aside = self.db.find(self.aside_id)
        template = self._check_names(current, restored, aside)

        self._part_way(lambda: self._swap(current, restored, template))
        final = self.db.find(self.instance_id)
        if final is None:
            raise NotFound(
                f"{self.db.noun} {self.instance_id} does not exist.", instance_id=self.instance_id
            )
        return Applied(changed=True, prior=prior, detail=self._detail(final))

    def _count_before_swap(self, copy: Database, current: Database | None) -> None:
        """Count the restored copy's rows and the live rows it replaces; tag the copy."""
        if self.rows is None:
            return
        snapshot_rows = self.rows.count(copy.identifier, copy.endpoint, copy.port)
        live_rows: TableRows = {}
        if current is not None:
            live_rows = self.rows.count(current.identifier, current.endpoint, current.port)
        self.db.tag(copy, {ROWS_DIGEST_TAG: rows_digest(snapshot_rows)})
        self.row_window = {
            "snapshot_rows": snapshot_rows,
            "live_rows": live_rows,
            "discarded": rows_difference(snapshot_rows, live_rows),
            "database": self.rows.label(),
        }

    def _refuse_without_consent(self) -> None:
        if self.accept_data_loss:
            return
        taken_at = self.snapshot_taken_at
        if taken_at is None:
            found = self.db.find_snapshot(self.snapshot_id)
            taken_at = found.created_at if found else None
        if taken_at is None:
            window = "an unknown time (the snapshot's time is not recorded)"
        else:
            window = (
                f"{describe_window(data_loss_window(taken_at, self.now()))} "
                f"(since {_aware(taken_at).isoformat(timespec='seconds')})"
            )
        raise UsageError(
            f"restoring snapshot {self.snapshot_id} onto {self.instance_id} loses every write "
            f"made in the last {window}; accept the data loss (--accept-data-loss) to go ahead.",
            snapshot_id=self.snapshot_id,
            instance_id=self.instance_id,
        )

    def _check_names(
        self, current: Database | None, restored: Database | None, aside: Database | None
    ) -> Database:
        """Refuse taken names before any change; return the instance whose settings to copy."""
        if restored is not None and not self._is_restored(restored):
            raise AlreadyExists(
                f"cannot restore into {self.restore_id}: that identifier is taken by a "
                f"{self.db.noun} this run did not restore.",
                instance_id=self.restore_id,
            )
        if current is not None and aside is not None:
            raise AlreadyExists(
                f"cannot move {self.instance_id} aside: identifier {self.aside_id} is taken.",
                instance_id=self.aside_id,
            )
        template = current or aside
        if template is None:
            raise NotFound(
                f"{self.db.noun} {self.instance_id} does not exist (nor {self.aside_id}).",
                instance_id=self.instance_id,
            )
        return template

    def _swap(
        self, current: Database | None, restored: Database | None, template: Database
    ) -> None:
        if restored is None or restored.status != "renaming":
            # Creates only what of the copy is missing (a cluster's writer instance too).
            self.db.restore(
                self.restore_id, self.snapshot_id, like=template, tags=self._tags(template)
            )
            restored = self.db.wait_available(self.restore_id, self.timeout_s, self.timing)
        if restored.status != "renaming":  # a rename in flight: the copy was counted before it
            self._count_before_swap(restored, current)
        if current is not None:
            self._rename(current, self.aside_id)
        self._rename(restored, self.instance_id)
        self._names_follow()

    def _names_follow(self) -> None:
        """What is named after each database follows its new name (a cluster's instances):
        the one set aside first, which frees the names the restored one takes."""
        self.db.follow(self.aside_id, self.instance_id, self.timeout_s, self.timing)
        self.db.follow(self.instance_id, self.restore_id, self.timeout_s, self.timing)

    def _part_way(self, change: Callable[[], None]) -> None:
        """Run `change`; a failure says which database each name holds now."""
        try:
            change()
        except RollbackError as exc:
            raise CheckFailed(
                f"db-restore stopped part-way: {exc.message} Now {self._state_sentence()}. "
                "Running the step again continues from here; compensating puts the names back.",
                state=self._state(),
            ) from exc

    def _rename(self, instance: Database, new_id: str) -> None:
        # A rename already in flight (the process died just after asking) is only awaited.
        if instance.status != "renaming":
            self.db.rename(instance.identifier, new_id)
        self.db.wait_renamed(instance.identifier, new_id, self.timeout_s, self.timing)

    def _tags(self, template: Database) -> dict[str, str]:
        kept = {k: v for k, v in template.tags.items() if not k.startswith(("aws:", "rollback:"))}
        return {**kept, RESTORED_FROM_TAG: self.snapshot_id, RUN_TAG: self.run_id}

    def _is_restored(self, instance: Database) -> bool:
        """True for the instance this run restored (by its tags)."""
        return (
            instance.tags.get(RESTORED_FROM_TAG) == self.snapshot_id
            and instance.tags.get(RUN_TAG) == self.run_id
        )

    # verify

    def verify(self) -> list[Evidence]:
        """Read back: the original name holds the restored instance, the old one is aside,
        and both have the same settings."""
        current = self.db.find(self.instance_id)
        aside = self.db.find(self.aside_id)
        source = self.db.find_snapshot(self.snapshot_id)
        snapshot_at = source.created_at if source else None
        api = self.db.describe_api
        if current is None:
            restored_ev = evidence(
                api,
                {"instance_id": self.instance_id, "exists": False},
                False,
                f"no instance is named {self.instance_id}",
            )
        else:
            after_snapshot = (
                current.created_at is not None
                and snapshot_at is not None
                and current.created_at >= snapshot_at
            )
            ok = current.status == "available" and self._is_restored(current) and after_snapshot
            restored_ev = evidence(
                api,
                {
                    "instance_id": self.instance_id,
                    "exists": True,
                    "status": current.status,
                    "endpoint": current.endpoint,
                    "restored_from": current.tags.get(RESTORED_FROM_TAG),
                    "run": current.tags.get(RUN_TAG),
                    "created_at": current.created_at.isoformat() if current.created_at else None,
                    "snapshot_created_at": snapshot_at.isoformat() if snapshot_at else None,
                    "expected_snapshot": self.snapshot_id,
                },
                ok,
                ""
                if ok
                else (
                    f"{self.instance_id} is {current.status}, tagged restored-from "
                    f"{current.tags.get(RESTORED_FROM_TAG)!r} by run "
                    f"{current.tags.get(RUN_TAG)!r}, created after the snapshot: {after_snapshot}"
                ),
            )
        aside_ev = evidence(
            api,
            {
                "instance_id": self.aside_id,
                "exists": aside is not None,
                "status": aside.status if aside else None,
            },
            aside is not None,
            "" if aside else f"the previous instance is not under {self.aside_id}",
        )
        found = [restored_ev, aside_ev, self._settings_evidence(current, aside)]
        if self.rows is not None:
            found.append(self._rows_evidence(current))
        return found

    def _rows_evidence(self, current: Database | None) -> Evidence:
        """The live database's rows, counted now, are the snapshot's (the digest the copy
        was tagged with before the swap)."""
        assert self.rows is not None
        expected = current.tags.get(ROWS_DIGEST_TAG) if current else None
        try:
            rows = self.rows.count(
                self.instance_id,
                current.endpoint if current else None,
                current.port if current else None,
            )
        except RollbackError as exc:
            return evidence(
                "sql:SELECT count(*)", {"instance_id": self.instance_id}, False, exc.message
            )
        observed = {
            "instance_id": self.instance_id,
            **observed_rows(rows),
            "expected_digest": expected,
            "database": self.rows.label(),
        }
        ok = expected is not None and observed["digest"] == expected
        note = (
            ""
            if ok
            else (
                f"{self.instance_id} holds rows {rows}, not the snapshot's (digest {expected})"
                if expected
                else f"{self.instance_id} carries no {ROWS_DIGEST_TAG} tag to compare rows with"
            )
        )
        return evidence("sql:SELECT count(*)", observed, ok, note)

    def _settings_evidence(self, current: Database | None, aside: Database | None) -> Evidence:
        if current is None or aside is None:
            return evidence(
                self.db.describe_api,
                {"compared": False},
                False,
                "settings not compared: an instance is missing",
            )
        restored, previous = current.settings(), aside.settings()
        differences = {
            key: {"restored": restored[key], "previous": previous[key]}
            for key in restored
            if restored[key] != previous.get(key)
        }
        return evidence(
            self.db.describe_api,
            {"compared": True, "settings": restored, "differences": differences},
            not differences,
            "" if not differences else f"settings differ: {', '.join(sorted(differences))}",
        )

    # compensate

    def compensate(self, prior: dict[str, Any]) -> None:
        """Put the names back: restored -> `<id>-restore-<run>`, aside -> the original id.

        Resumable like apply. The restored instance is kept, not deleted: it may
        hold writes made after the swap.
        """
        instance_id = str(prior.get("instance_id", self.instance_id))
        restore_id = str(prior.get("restore_id", self.restore_id))
        aside_id = str(prior.get("aside_id", self.aside_id))
        try:
            current = self.db.find(instance_id)
            if current is not None and self._is_restored(current):
                self._rename(current, restore_id)
                current = None
            aside = self.db.find(aside_id)
            if aside is not None:
                if current is not None:
                    raise AlreadyExists(
                        f"cannot move {aside_id} back: {instance_id} is taken by an instance "
                        "this run did not restore.",
                        instance_id=instance_id,
                    )
                self._rename(aside, instance_id)
            # The restored copy's instances free the original names, then the previous ones
            # take them back.
            self.db.follow(restore_id, instance_id, self.timeout_s, self.timing)
            self.db.follow(instance_id, aside_id, self.timeout_s, self.timing)
        except RollbackError as exc:
            raise CheckFailed(
                f"db-restore compensation stopped part-way: {exc.message} Now "
                f"{self._state_sentence()}. Compensating again continues from here.",
                state=self._state(),
            ) from exc

    # state for messages and the journal

    def _prior(self) -> dict[str, Any]:
        return {
            "instance_id": self.instance_id,
            "restore_id": self.restore_id,
            "aside_id": self.aside_id,
            "snapshot_id": self.snapshot_id,
            "run_id": self.run_id,
        }

    def _state(self) -> dict[str, str | None]:
        """Which instance each name holds now: restored, previous, other or absent."""
        state: dict[str, str | None] = {}
        for name in (self.instance_id, self.aside_id, self.restore_id):
            try:
                found = self.db.find(name)
            except RollbackError:
                state[name] = None  # unknown: the cloud did not answer
                continue
            if found is None:
                state[name] = "absent"
            elif self._is_restored(found):
                state[name] = f"restored copy ({found.status})"
            else:
                state[name] = f"previous or other instance ({found.status})"
        return state

    def _state_sentence(self) -> str:
        return "; ".join(f"{k}: {v or 'unknown'}" for k, v in self._state().items())

    def _detail(self, instance: Database) -> dict[str, Any]:
        detail: dict[str, Any] = {
            "instance_id": instance.identifier,
            "endpoint": instance.endpoint,
            "restored_from": instance.tags.get(RESTORED_FROM_TAG),
            "aside_id": self.aside_id,
        }
        if self.row_window is not None:
            detail["rows"] = self.row_window
        return detail
