"""What a long-running agent prepares before an alarm, and the reads it starts on receipt.

A `rollback emergency` from the CLI pays for everything at once: the release
registry (each manifest is checked against its git tag), the engine choice,
the passphrase check of the target's secrets (PBKDF2), and the live read the
plan is made from, one call after another. An agent alive for days need not
pay all of that between an alarm and the traffic step:

- `Warmth.warm(stack)` (at start, again for the stacks a message touched,
  and for all of them when the queue has been quiet for a while) builds the
  stack's workbench, loads its current and target releases (the registry
  checks a manifest against its tag once per manifest digest: a manifest that
  changes is checked again), and starts the passphrase check of the target's
  secrets in the agent's one `Unlocks` (keyed by passphrase and salt: the
  same inputs give the same answer, and a new salt is checked when asked).
- `Warmth.read_ahead(stack)`, the moment a message names the stack, takes
  the stack's lock for the run an emergency would start (unless a run holds
  it: then the emergency waits for it to stop, and the planner reads for
  itself), then starts, on threads started at warm-up, the planner's live read (listener
  weights and forward config, target health per colour, the database and
  the target's snapshot) while the claims are written. It is read after the
  alarm and under the lock; the planner takes it only for the very topology
  and snapshot it was started for, within AHEAD_FRESH_S, and reads again
  otherwise; the traffic step acts on it as on any plan's read made under
  its run's lock (`orchestrate.emergency`). A message that starts no
  emergency (a duplicate, a stale incident, a run to resume) releases the
  lock at once (`forget_reads`).

Nothing is skipped: claims, stop request, lock, plan, preflight and journal
run as `rollback emergency` runs them, and the lock is taken before any read
the traffic step acts on. What is kept is validated where it is used: the
registry reads its documents each time (the cache is the tag check of a
digest), the plan compares the topology it asks for.
"""

from __future__ import annotations

import contextlib
import logging
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, fields
from typing import TYPE_CHECKING

from rollback.errors import RollbackError
from rollback.orchestrate import Workbench

if TYPE_CHECKING:
    from rollback.models import Topology
    from rollback.planner import LiveView, Planner
    from rollback.preflight import Unlocks
    from rollback.releases import Release
    from rollback.store.lock import HeldLock

log = logging.getLogger(__name__)

# A message's live read runs on these: the listener, two colours' health, the database
# and its snapshot.
READERS = 5
WARM_CLIENTS = ("elbv2", "rds", "cloudwatch")  # what the plan and the steps up to traffic use
AHEAD_FRESH_S = 2.0  # a read started longer ago than this before the plan asks is read again


class LiveAhead:
    """The planner's live read of one topology (`planner.LiveRead`), started before it asks."""

    def __init__(
        self, pool: ThreadPoolExecutor, bench: Workbench, topology: Topology, target: Release
    ) -> None:
        from rollback.aws.elbv2 import LoadBalancing
        from rollback.aws.rds import Rds
        from rollback.planner import LiveRead

        self.topology = topology
        self.snapshot_id = target.db_snapshot_id or ""
        self.started = time.monotonic()
        elbv2, rds = LoadBalancing(bench.clients("elbv2")), Rds(bench.clients.lazy("rds"))
        self._read = LiveRead(elbv2, rds, topology, target, pool)

    def serves(self, topology: Topology, target: Release) -> bool:
        """Whether this read is the one the planner asks for: same topology and snapshot, and
        started at most AHEAD_FRESH_S ago (a run we waited for may have moved traffic since)."""
        return (
            topology == self.topology
            and (target.db_snapshot_id or "") == self.snapshot_id
            and time.monotonic() - self.started <= AHEAD_FRESH_S
        )

    def view(self) -> LiveView:
        """What the read found; raises what a read raised."""
        return self._read.view()


@dataclass
class AgentWorkbench(Workbench):
    """A workbench whose next plan may use a live read started on the message's receipt."""

    ahead: LiveAhead | None = None

    @classmethod
    def of(cls, bench: Workbench) -> AgentWorkbench:
        return cls(**{f.name: getattr(bench, f.name) for f in fields(Workbench)})

    def planner(self) -> Planner:
        planner = super().planner()
        ahead, self.ahead = self.ahead, None  # one read serves one plan
        if ahead is None:
            return planner
        fresh = planner.live

        def live(topology: Topology, target: Release) -> LiveView:
            if ahead.serves(topology, target):
                return ahead.view()
            log.info("%s: the plan asks for another topology; reading it now", self.registry.stack)
            return fresh(topology, target)

        planner.live = live
        return planner


@dataclass(frozen=True)
class Prepared:
    """One stack as warmed: whose current release it was, its topology, the rollback target."""

    current: str
    topology: Topology
    target: Release | None


class Warmth:
    """The agent's warm state: workbenches, release checks, passphrase checks, read threads."""

    def __init__(self, bench_for: Callable[[str], Workbench], unlocks: Unlocks | None = None):
        from rollback.preflight import Unlocks

        self.bench_for = bench_for
        self.unlocks = unlocks or Unlocks()
        self.benches: dict[str, Workbench] = {}
        self.prepared: dict[str, Prepared] = {}
        self.locks: dict[str, HeldLock] = {}  # taken on a message, for the emergency it starts
        self.pool = ThreadPoolExecutor(max_workers=READERS, thread_name_prefix="agent-read")
        self.warmed_at = 0.0

    def start_threads(self) -> None:
        """Start the read threads, and the local store's fsync threads, now: a thread started
        on an alarm would first wait for the scheduler to run it (milliseconds each on a busy
        machine) before its read, or the journal's write, could go on. (With a store in S3
        the fsync threads stay idle.)"""
        from rollback.store.local import SYNC_THREADS, sync_pool

        for pool, count in ((self.pool, READERS), (sync_pool(), SYNC_THREADS)):
            # A pool starts a thread for each task no idle thread takes: tasks that wait for
            # each other keep all of them busy until the last one has started.
            everyone = threading.Barrier(count, timeout=5.0)  # a busy pool: started on use
            waits = [pool.submit(everyone.wait) for _ in range(count)]
            for done in waits:
                with contextlib.suppress(threading.BrokenBarrierError):
                    done.result()

    def bench(self, stack: str) -> Workbench:
        """The stack's workbench (an `AgentWorkbench` when bench_for builds a plain one)."""
        if stack not in self.benches:
            bench = self.bench_for(stack)
            self.benches[stack] = AgentWorkbench.of(bench) if type(bench) is Workbench else bench
        return self.benches[stack]

    def warm(self, stack: str) -> None:
        """Load what an emergency of `stack` reads first; never raises (the incident would say it)."""
        from rollback.preflight import begin
        from rollback.releases import LAST_STABLE

        try:
            bench = self.bench(stack)
            registry = bench.registry
            current = registry.current()
            if current is None:
                self.prepared.pop(stack, None)
                return
            release = registry.load(current)[0]
            topology = registry.topology(release)
            begin(registry, LAST_STABLE, bench.environ, into=self.unlocks)
            version = registry.rollback_target(LAST_STABLE)
            # load: the manifest's tag is checked now, once per manifest digest
            target = registry.load(version)[0] if version else None
            if bench.engine_kind is not None:
                bench.engine_kind()
            for service in WARM_CLIENTS:  # a client's service model loads in tens of ms
                bench.clients(service)
            self.prepared[stack] = Prepared(current, topology, target)
        except RollbackError as exc:
            self.prepared.pop(stack, None)
            log.warning("warming up %s: %s", stack, exc.message)

    def warm_all(self, stacks: list[str]) -> None:
        for stack in stacks:
            self.warm(stack)
        self.warmed_at = time.monotonic()

    def read_ahead(self, stack: str, current: str) -> None:
        """Lock `stack` for its next run and start that plan's live read, when `current` is
        the release warmed and no run holds the stack."""
        from rollback.errors import LockHeld
        from rollback.plan import new_run_id
        from rollback.store.lock import HeldLock

        prepared = self.prepared.get(stack)
        bench = self.benches.get(stack)
        if prepared is None or prepared.current != current or not isinstance(bench, AgentWorkbench):
            return
        if prepared.target is None or stack in self.locks:
            return  # nothing to roll back to (the plan says so), or already locked for a run
        try:
            self.locks[stack] = HeldLock(bench.store, stack, new_run_id()).acquire()
        except LockHeld:
            return  # a run holds the stack: the emergency waits for it, then the plan reads
        try:
            bench.ahead = LiveAhead(self.pool, bench, prepared.topology, prepared.target)
        except RollbackError as exc:  # the planner reads again, and says it
            log.info("%s: reading ahead failed: %s", stack, exc.message)

    def lock(self, stack: str) -> HeldLock | None:
        """The lock `read_ahead` took for the next run of `stack`; the caller releases it."""
        return self.locks.pop(stack, None)

    def forget_reads(self, stack: str) -> None:
        """Drop a read, and release a lock, that no run took (a duplicate, a stale incident)."""
        bench = self.benches.get(stack)
        if isinstance(bench, AgentWorkbench):
            bench.ahead = None
        lock = self.locks.pop(stack, None)
        if lock is not None:
            lock.release()

    def close(self) -> None:
        for stack in list(self.locks):
            self.forget_reads(stack)
        self.pool.shutdown(wait=False, cancel_futures=True)
