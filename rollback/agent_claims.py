"""The agent's records in the store: who claimed what, and how it ended.

One incident, one run. Several agents may receive messages about the same
trouble (a redelivery, an event sent twice, two alarms of one stack). Each
is settled by a create-only write (local `link(2)`, S3 `If-None-Match: *`),
the same primitive the stack lock uses:

    agent/transitions/<key>.json            one alarm transition (its idempotency key)
    agent/incidents/<project>/<stack>/<id>.json   one incident: the release that was
                                            current when the alarm went off
    agent/jobs/<id>.json                    one queued job
    agent/results/<key>.json                how a claim ended (written last, may be rewritten)

An incident's id is the hash of the stack's `current.json` when the
transition was first claimed, so two alarms about one bad release share it,
and a release made current later is a new incident. The run a claim started
carries a tag (`[incident <id>]` or `[job <id>]`) in its reason, so a
redelivered message finds the run its dead agent left in the journal and
resumes it instead of starting another.
"""

from __future__ import annotations

import hashlib
import json
import socket
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from rollback.errors import AlreadyExists, NotFound

if TYPE_CHECKING:
    from rollback.journal import Run
    from rollback.store import Store

RUNS_SCANNED = 50  # newest runs of a stack searched for a claim's tag


def now_iso() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds")


def agent_name() -> str:
    """Who this agent is, for claims and journals: `rollback-agent@HOST/PID`."""
    import os

    return f"rollback-agent@{socket.gethostname()}/{os.getpid()}"


def _dump(doc: dict[str, Any]) -> bytes:
    return json.dumps(doc, sort_keys=True, indent=2).encode()


@dataclass(frozen=True)
class Claim:
    """A create-only claim document: `fresh` when this call wrote it, else the one found."""

    key: str
    doc: dict[str, Any]
    fresh: bool


def claim(store: Store, key: str, doc: dict[str, Any]) -> Claim:
    """Write `doc` at `key` unless it exists; return what is there now."""
    return claim_in_order(store, [(key, doc)])[0]


def claim_in_order(store: Store, claims: Sequence[tuple[str, dict[str, Any]]]) -> list[Claim]:
    """Claim each (key, doc) in order, in one store write, up to the first that exists.

    Returns the fresh claims, then the first one found (not fresh, as it is in
    the store); the claims after it are not written. One write waits for the
    disk once (a local store), however many claims it holds.
    """
    try:
        store.put_docs([(key, _dump(doc)) for key, doc in claims], create_only=True)
        return [Claim(key, doc, True) for key, doc in claims]
    except AlreadyExists as exc:
        keys = [key for key, _ in claims]
        at = keys.index(str(exc.fields.get("key")))  # the store names the one that exists
    found = [Claim(key, doc, True) for key, doc in claims[:at]]
    key = keys[at]
    return [*found, Claim(key, dict(json.loads(store.get_doc(key))), False)]


def transition_key(key: str) -> str:
    return f"agent/transitions/{key}.json"


def incident_key(stack: str, incident: str) -> str:
    return f"agent/incidents/{stack}/{incident}.json"


def job_key(job_id: str) -> str:
    return f"agent/jobs/{job_id}.json"


def result_key(key: str) -> str:
    return f"agent/results/{key}.json"


def current_release(store: Store, stack: str) -> tuple[str, dict[str, Any]] | None:
    """(incident id, current.json) of the stack, or None when it has no current release."""
    try:
        raw = store.get_doc(f"releases/{stack}/current.json")
    except NotFound:
        return None
    incident = hashlib.sha256(stack.encode() + b"\n" + raw).hexdigest()[:24]
    return incident, dict(json.loads(raw))


def write_result(store: Store, key: str, doc: dict[str, Any]) -> None:
    store.put_doc(result_key(key), _dump({**doc, "written_at": now_iso()}))


def read_result(store: Store, key: str) -> dict[str, Any] | None:
    try:
        return dict(json.loads(store.get_doc(result_key(key))))
    except NotFound:
        return None


def find_tagged_run(store: Store, stack: str, tag: str) -> Run | None:
    """The newest run of `stack` whose reason carries `tag`, or None."""
    from rollback.journal import Journal, run_key, sorted_run_ids

    run_ids = sorted_run_ids(store, stack)
    for run_id in reversed(run_ids[-RUNS_SCANNED:]):
        try:
            reason = str(
                json.loads(store.get_doc(run_key(stack, run_id, "run.json"))).get("reason", "")
            )
        except (NotFound, ValueError):
            continue
        if tag in reason:
            return Journal.load(store, stack, run_id)
    return None
