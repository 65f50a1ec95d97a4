"""The planner: from the current release, the target release and the live cloud,
the ordered plan of a rollback. It only reads; `rollback plan` changes nothing.

Order (DESIGN.md, "Order"): traffic first when the target colour still runs
the target version, can take traffic and the schema is compatible — users get
the good version back in seconds, and the slow work follows. Otherwise the
stack is rebuilt and the database brought back before traffic moves. A
snapshot of the current database always comes before anything touches it;
health and alarms come last; the releases are marked at the end.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from rollback.errors import NotFound, UsageError
from rollback.models import COLORS, StepDescription, Topology
from rollback.plan import Plan, PlannedStep, new_run_id
from rollback.releases import Registry, Release, version_key

if TYPE_CHECKING:
    from concurrent.futures import Executor, Future

    from rollback.aws.elbv2 import Actions, LoadBalancing, TargetHealth
    from rollback.aws.rds import Rds

DATABASE_URL_ENV = "ROLLBACK_DATABASE_URL"


@dataclass(frozen=True)
class LiveView:
    """What the planner read from the cloud: weights, routable targets, the snapshot."""

    weights: dict[str, int]  # colour -> listener weight now
    routable: dict[str, int]  # colour -> targets that can take traffic (the colours read)
    snapshot_status: (
        str | None
    )  # the target release's snapshot: available, creating, ... or None if absent
    db_exists: bool
    # What the weights and counts came from, for a traffic step that may take it instead of
    # reading again (it must have been read under that run's lock: see orchestrate.emergency).
    actions: Actions = field(default_factory=list, compare=False, repr=False)
    health: dict[str, list[TargetHealth]] = field(default_factory=dict, compare=False, repr=False)
    read_at: float = field(default=0.0, compare=False)  # time.monotonic() when the read started


@dataclass(frozen=True)
class Options:
    """What the person (or pipeline) asked for."""

    accept_data_loss: bool = False
    force: bool = False
    reason: str = ""
    actor: str = ""
    emergency: bool = False
    smoke_command: str | None = None


def read_live(
    elbv2: LoadBalancing, rds: Rds | None, topology: Topology, target: Release
) -> LiveView:
    """Read the listener weights, target health and the target's snapshot (read-only).

    On threads started for this read; see `LiveRead`.
    """
    from concurrent.futures import ThreadPoolExecutor

    workers = 3 + len(topology.target_groups)
    with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="plan-read") as pool:
        return LiveRead(elbv2, rds, topology, target, pool).view()


class LiveRead:
    """The planner's live read, started on `pool`'s threads; `view` waits for it.

    Target health is read for the colour the target release ran on, the one
    a rollback sends traffic to (for every colour when the release names
    none): the plan, preflight and the traffic step decide on that one only.

    The reads are independent and each waits on the network, so they run at
    once: on the emergency path they come before the traffic step, and in
    series they cost one round trip each (issue 9, item 7). `rds` may create
    its client on first use: that happens in its own thread, while the load
    balancer's reads wait. An agent starts it on threads it keeps (a thread
    started for a read first waits for the scheduler, milliseconds on a busy
    machine), from the thread that took the lock, and plans while it runs.
    """

    def __init__(
        self,
        elbv2: LoadBalancing,
        rds: Rds | None,
        topology: Topology,
        target: Release,
        pool: Executor,
    ) -> None:
        import time

        self.started = time.monotonic()
        self.colours = list(topology.target_groups.items())
        receiving = [(c, arn) for c, arn in self.colours if c == target.color] or self.colours
        # The load balancer's first: the RDS client is made on first use, holding the GIL.
        self._actions = pool.submit(elbv2.listener_actions, topology.listener_arn)
        self._healths = {c: pool.submit(elbv2.target_health, arn) for c, arn in receiving}
        self._exists: Future[bool] | None = None
        self._snapshot: Future[str | None] | None = None
        if rds is not None and topology.db_instance_id:
            self._exists = pool.submit(_database_exists, rds, topology)
            if target.db_snapshot_id:
                self._snapshot = pool.submit(_snapshot_status, rds, topology, target.db_snapshot_id)

    def view(self) -> LiveView:
        """What was read; raises what a read raised."""
        from rollback.aws.elbv2 import forward_weights

        listener = self._actions.result()
        health = {c: h.result() for c, h in self._healths.items()}
        db_exists = self._exists.result() if self._exists is not None else False
        status = self._snapshot.result() if self._snapshot is not None else None
        by_arn = forward_weights(listener)
        weights = {c: by_arn.get(arn, 0) for c, arn in self.colours}
        routable = {c: sum(1 for t in found if t.routable) for c, found in health.items()}
        return LiveView(weights, routable, status, db_exists, listener, health, self.started)


def _database_exists(rds: Rds, topology: Topology) -> bool:
    """Whether the database (instance or cluster, by the topology's db_kind) exists."""
    from rollback.aws.databases import databases

    return databases(rds, topology.db_kind).find(topology.db_instance_id) is not None


def _snapshot_status(rds: Rds, topology: Topology, snapshot_id: str) -> str | None:
    """The status of the target's snapshot (None: there is none)."""
    from rollback.aws.databases import databases

    snap = databases(rds, topology.db_kind).find_snapshot(snapshot_id)
    return snap.status if snap else None


@dataclass
class _Builder:
    """Accumulates planned steps and warnings in order."""

    steps: list[PlannedStep] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)

    def add(
        self,
        kind: str,
        summary: str,
        reason: str,
        seconds: float,
        params: dict[str, Any],
        *,
        changes: dict[str, Any] | None = None,
        skippable: bool = True,
    ) -> None:
        self.steps.append(
            PlannedStep(
                name=kind,
                kind=kind,
                description=StepDescription(kind, summary, changes or {}, reason, seconds),
                params=params,
                skippable=skippable,
            )
        )


class Planner:
    """Builds plans for one stack; every cloud read goes through `live`."""

    def __init__(
        self,
        registry: Registry,
        live: Callable[[Topology, Release], LiveView],
        now: Callable[[], datetime] = lambda: datetime.now(UTC),
        health_deadline_s: float = 60.0,
    ) -> None:
        self.registry = registry
        self.live = live
        self.now = now
        self.health_deadline_s = health_deadline_s
        self.read: tuple[Topology, LiveView] | None = None  # the last plan's live read

    def plan(
        self, target_version: str, options: Options = Options(), *, run_id: str | None = None
    ) -> Plan:
        """The ordered plan from the current release to `target_version` (or last-stable).

        `run_id`: the run's id when it was chosen before the plan (its lock is
        already taken); default a new one. Raises NotFound for an unknown version or no current release, UsageError
        for a target marked bad (unless forced).
        """
        registry = self.registry
        target_view = registry.show(self._target(target_version))
        target = target_view.release
        current_version = registry.current()
        if current_version is None:
            raise NotFound(
                f"no release of {registry.stack} is current; record the deployed release with `rollback release record`."
            )
        current = registry.show(current_version).release
        run_id = run_id or new_run_id(self.now())
        base = Plan(
            run_id=run_id,
            stack=registry.stack,
            from_version=current.version,
            to_version=target.version,
            steps=(),
            created_at=self.now().isoformat(timespec="seconds"),
            created_by=options.actor,
            reason=options.reason,
        )
        if current.version == target.version:
            return replace(
                base, warnings=(f"{registry.stack} is already at {target.version}; nothing to do.",)
            )
        if target_view.status == "bad" and not options.force:
            raise UsageError(
                f"release {target.version} is marked bad; choose another target or pass --force if you are sure."
            )

        b = _Builder()
        if target_view.status != "stable":
            b.warnings.append(
                f"release {target.version} is not marked stable (it is {target_view.status})."
            )
        live_topology = registry.topology(current)
        target_topology = registry.topology(target) if target.topology else live_topology
        color = target.color or target_topology.live_color
        if color not in live_topology.target_groups:
            raise UsageError(
                f"release {target.version} ran on colour {color!r}, which the live topology does not have ({', '.join(live_topology.target_groups)})."
            )
        # From the store only: before the live read, which may already be on its way.
        between = self._schema_changes_between(target, current)
        live = self.live(live_topology, target)
        self.read = (live_topology, live)
        runs_target = live_topology.versions.get(color) == target.version
        schema_changes = current.schema_revision != target.schema_revision
        # An emergency puts traffic first even across a schema change: serving
        # the old code on the new schema beats serving the broken release.
        traffic_first = (
            runs_target
            and live.routable.get(color, 0) > 0
            and (not schema_changes or options.emergency)
        )
        if not runs_target:
            b.warnings.append(
                f"colour {color} runs {live_topology.versions.get(color, 'nothing')}, not {target.version}: the stack step must rebuild it before traffic moves."
            )
        elif live.routable.get(color, 0) == 0:
            b.warnings.append(
                f"colour {color} has no healthy targets now: traffic moves only after the stack step."
            )
        if between:
            b.warnings.append(
                f"releases between {target.version} and {current.version} changed the schema: {', '.join(between)}."
            )

        restore = schema_changes and not target.migration_command
        window = None
        if restore:
            if not target.db_snapshot_id:
                raise UsageError(
                    f"the schema differs ({current.schema_revision} -> {target.schema_revision}) and release {target.version} records neither a migration command nor a database snapshot; nothing can bring the data back."
                )
            taken = datetime.fromisoformat(target.db_snapshot_at) if target.db_snapshot_at else None
            window = (self.now() - taken).total_seconds() if taken else None
            b.warnings.append(
                f"restoring snapshot {target.db_snapshot_id} loses every write since {target.db_snapshot_at} ({_human(window)}); pass --accept-data-loss to allow it. "
                f"With {DATABASE_URL_ENV} set, the rows written since are counted per table before the swap and reported; they stay in the pre-restore snapshot."
            )
            if live.snapshot_status != "available":
                raise UsageError(
                    f"snapshot {target.db_snapshot_id} of release {target.version} is {live.snapshot_status or 'missing'}, not available; it cannot be restored."
                )

        weights = {c: (100 if c == color else 0) for c in live_topology.target_groups}
        self._preflight(b, target, restore, live_topology.db_kind)
        if traffic_first:
            self._traffic(
                b,
                live_topology,
                weights,
                live,
                "the target colour still runs the target version and the schema is compatible: users get it back first",
            )
        if live_topology.db_instance_id and live.db_exists:
            # After a traffic-first shift (which touches no data), before the stack and the
            # database steps: users get the good version back without waiting for it.
            b.add(
                "db-snapshot",
                f"snapshot {live_topology.db_instance_id} before anything touches it",
                "a rollback never destroys data: this snapshot is the way back from every later step",
                120,
                {
                    "instance_id": live_topology.db_instance_id,
                    "db_kind": live_topology.db_kind,
                    "run_id": run_id,
                },
                skippable=not (restore or schema_changes),
            )
        self._stack(
            b,
            target,
            current.version,
            "re-apply the target release's program and config so the stack matches what was tested",
        )
        artifact_key = target_topology.artifact_key_of(color) or live_topology.artifact_key_of(
            color
        )
        if live_topology.artifact_bucket and artifact_key:
            # The key of the version the target colour runs: the live colour's key of the
            # target's own topology may name another version's artifact.
            b.add(
                "artifact",
                f"ensure s3://{live_topology.artifact_bucket}/{artifact_key} holds {target.artifact_name}",
                "the rebuilt colour pulls the release's artifact from the bucket",
                10,
                {
                    "bucket": live_topology.artifact_bucket,
                    "key": artifact_key,
                    "sha256": target.artifact.sha256,
                    "size": target.artifact.size,
                },
            )
        if schema_changes and target.migration_command:
            b.add(
                "migrate",
                f"migrate the schema down to {target.schema_revision} with `{target.migration_command}`",
                "the target release's code expects its own schema revision",
                60,
                {
                    "command": target.migration_command,
                    "revision": target.schema_revision,
                    "prior_revision": current.schema_revision,
                    "upgrade_command": upgrade_template(target.migration_command),
                    "database_url_env": DATABASE_URL_ENV,
                },
            )
        if restore:
            b.add(
                "db-restore",
                f"restore {live_topology.db_instance_id} from {target.db_snapshot_id} (keeps the endpoint)",
                "no down-migration is recorded, so the data comes back from the release's snapshot",
                900,
                {
                    "instance_id": live_topology.db_instance_id,
                    "db_kind": live_topology.db_kind,
                    "snapshot_id": target.db_snapshot_id,
                    "snapshot_taken_at": target.db_snapshot_at,
                    "run_id": run_id,
                    "accept_data_loss": options.accept_data_loss,
                },
                changes={"data_loss_window_s": window},
            )
        if target.integrity_checks and (schema_changes or restore):
            b.add(
                "integrity",
                f"run {len(target.integrity_checks)} data integrity check(s)",
                "prove the data survived the migration or restore before users reach it",
                10,
                {"checks": list(target.integrity_checks), "database_url_env": DATABASE_URL_ENV},
            )
        if not traffic_first:
            self._traffic(
                b,
                live_topology,
                weights,
                live,
                "traffic moves only once the target colour is rebuilt and the database matches it",
            )
        urls = live_topology.health_urls.get(color, [])
        alarms = live_topology.alarms.get(color, [])
        b.add(
            "health",
            f"check {len(urls)} health URL(s) and {len(alarms)} alarm(s) of {color}",
            "last: proves users are served by the target version",
            30,
            {"urls": urls, "alarms": alarms, "deadline_s": self.health_deadline_s},
        )
        smoke = options.smoke_command or target.smoke_command
        if smoke:
            b.add(
                "smoke",
                f"run the smoke test `{smoke}`",
                "exercise the user workflows end to end",
                120,
                {"command": smoke, "topology": live_topology.to_dict(), "color": color},
            )
        b.add(
            "mark",
            f"mark {current.version} bad and make {target.version} current",
            "the registry must say what runs, so the next deploy and rollback start from the truth",
            1,
            {
                "bad": current.version,
                "current": target.version,
                "reason": options.reason or f"rolled back to {target.version}",
            },
        )
        return replace(
            base, steps=tuple(b.steps), warnings=tuple(b.warnings), data_loss_window_s=window
        )

    def _target(self, version: str) -> str:
        """`last-stable` for a rollback: the newest stable release that is not the current one.

        (A promoted release that goes bad is stable and current; rolling back
        to it would do nothing.)
        """
        found = self.registry.rollback_target(version)
        if found is not None:
            return found
        self.registry.require_releases()
        raise NotFound(
            f"no release of {self.registry.stack} other than the current one is marked stable; mark one with `rollback release mark VERSION --stable`."
        )

    def _preflight(self, b: _Builder, target: Release, restore: bool, db_kind: str) -> None:
        blobs = [
            r.sha256
            for r in (target.artifact, target.checkpoint, target.config, target.topology)
            if r
        ]
        b.add(
            "preflight",
            f"check {len(blobs)} stored blob(s) of {target.version}"
            + (f", snapshot {target.db_snapshot_id}" if restore else ""),
            "nothing moves until the target release is intact and reachable",
            5,
            {
                "blobs": blobs,
                "snapshot_id": target.db_snapshot_id if restore else None,
                "db_kind": db_kind,
                # No target-health read here: the traffic step refuses an unhealthy colour itself.
            },
            skippable=False,
        )

    def _traffic(
        self, b: _Builder, topology: Topology, weights: dict[str, int], live: LiveView, why: str
    ) -> None:
        # `routable`: what the planner read, so preflight need not read it again (planned_now).
        params = {"topology": topology.to_dict(), "weights": weights, "routable": live.routable}
        b.add(
            "traffic",
            f"listener weights {_split(live.weights)} -> {_split(weights)}",
            why,
            5,
            params,
            changes={"from": live.weights, "to": weights},
        )
        if topology.zone_id and topology.set_identifiers:
            b.add(
                "dns",
                f"Route53 weights of {topology.record_name} -> {_split(weights)}",
                "clients resolving the name directly follow the load balancer",
                60,
                params,
                changes={"to": weights},
            )

    def _stack(self, b: _Builder, target: Release, previous: str, why: str) -> None:
        if target.checkpoint is None:
            b.warnings.append(
                f"release {target.version} carries no checkpoint: the stack is not re-applied."
            )
            return
        b.add(
            "stack",
            f"re-apply the program of {target.tag} ({target.commit[:12]}) with its recorded config",
            why,
            180,
            {"version": target.version, "previous": previous},
        )

    def _schema_changes_between(self, target: Release, current: Release) -> list[str]:
        low, high = sorted((target.version, current.version), key=version_key)
        found = []
        previous = None
        for version in sorted(self.registry.versions(), key=version_key):
            if not version_key(low) <= version_key(version) <= version_key(high):
                continue
            revision = self.registry.load(version)[0].schema_revision
            if previous is not None and revision != previous[1]:
                found.append(f"{version} ({previous[1]} -> {revision})")
            previous = (version, revision)
        return found


def upgrade_template(template: str) -> str | None:
    """The way back up for compensation: Alembic's `downgrade` becomes `upgrade`.

    None when the template names no direction: compensation then says it cannot.
    """
    return template.replace("downgrade", "upgrade") if "downgrade" in template else None


def _split(weights: dict[str, int]) -> str:
    return "/".join(f"{c} {weights.get(c, 0)}" for c in COLORS if c in weights)


def _human(seconds: float | None) -> str:
    if seconds is None:
        return "an unknown time"
    if seconds < 120:
        return f"{seconds:.0f} s"
    if seconds < 7200:
        return f"{seconds / 60:.0f} min"
    return f"{seconds / 3600:.1f} h"
