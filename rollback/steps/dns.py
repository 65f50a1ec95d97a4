"""DNS step: set the weights of the topology's weighted Route53 records between colours.

All records change in one UPSERT batch, each keeping every other value it has
(TTL, values or alias target, health check); the step then polls the change
until Route53 reports INSYNC. Resolvers that cached the old answer may still
send clients to the old colour for up to the record's TTL: describe() and the
evidence report it as `stale_for_s`.
"""

from __future__ import annotations

import copy
from typing import Any

from rollback.aws.route53 import Dns
from rollback.errors import CheckFailed, UsageError
from rollback.models import Evidence, StepDescription, Topology
from rollback.steps import Applied, evidence
from rollback.waiting import Timing, poll

MAX_WEIGHT = 255  # the Route53 limit per weighted record


class DnsStep:
    """UPSERT the weighted records to `target_weights` (colour -> weight) and wait for INSYNC."""

    kind = "dns"

    def __init__(
        self,
        route53: Dns,
        topology: Topology,
        target_weights: dict[str, int],
        timing: Timing | None = None,
        insync_timeout_s: float = 300.0,
    ) -> None:
        unknown = sorted(set(target_weights) - set(topology.set_identifiers))
        if unknown:
            raise UsageError(
                f"colour {', '.join(unknown)} has no weighted record in the topology "
                f"(it has {', '.join(sorted(topology.set_identifiers))}).",
            )
        weights = {c: int(target_weights.get(c, 0)) for c in topology.set_identifiers}
        if any(not 0 <= w <= MAX_WEIGHT for w in weights.values()) or not any(weights.values()):
            raise UsageError(
                f"record weights must be 0..{MAX_WEIGHT} per colour and not all 0, got {target_weights}.",
            )
        self.route53 = route53
        self.topology = topology
        self.target_weights = weights
        self.timing = timing or Timing()
        self.insync_timeout_s = insync_timeout_s

    def _records(self) -> dict[str, dict[str, Any]]:
        """The topology's weighted records keyed by colour; UsageError when one is missing."""
        topo = self.topology
        listed = self.route53.record_sets(topo.zone_id, topo.record_name, topo.record_type)
        by_id = {r.get("SetIdentifier"): r for r in listed}
        missing = [c for c, sid in topo.set_identifiers.items() if sid not in by_id]
        if missing:
            raise UsageError(
                f"zone {topo.zone_id} has no {topo.record_type} record {topo.record_name} with set "
                f"identifier {', '.join(topo.set_identifiers[c] for c in missing)}; nothing was changed: "
                "fix the stack's `rollback` output or the zone.",
                missing=missing,
            )
        return {c: by_id[sid] for c, sid in topo.set_identifiers.items()}

    def describe(self) -> StepDescription:
        """Reads the records once to say from which weights to which, and the TTL."""
        records = self._records()
        split = ", ".join(f"{c} {w}" for c, w in self.target_weights.items())
        stale = _stale_for(records)
        return StepDescription(
            kind=self.kind,
            summary=(
                f"set the DNS weights of {self.topology.record_name} to {split}; clients may still "
                f"reach the old colour for up to {_ttl_words(stale)} (the record's TTL)"
            ),
            changes={
                "zone_id": self.topology.zone_id,
                "record_name": self.topology.record_name,
                "from": {c: r.get("Weight") for c, r in records.items()},
                "to": dict(self.target_weights),
                "stale_for_s": stale,
            },
            reason="send clients that resolve the name to the colour that runs the target version",
            expected_seconds=60.0,
        )

    def _set(
        self, records: dict[str, dict[str, Any]], weights: dict[str, int], comment: str
    ) -> str | None:
        """UPSERT the records whose weight differs, wait for INSYNC; the change id, or None."""
        changed = []
        for colour, weight in weights.items():
            if records[colour].get("Weight") != weight:
                rrset = copy.deepcopy(records[colour])
                rrset["Weight"] = weight
                changed.append(rrset)
        if not changed:
            return None
        change_id = self.route53.upsert(self.topology.zone_id, changed, comment)
        seen = {"status": "PENDING"}  # the last status read, for progress and the timeout

        def insync() -> bool | None:
            seen["status"] = self.route53.change_status(change_id)
            return True if seen["status"] == "INSYNC" else None

        try:
            poll(
                f"Route53 change {change_id} to reach INSYNC",
                insync,
                timeout=self.insync_timeout_s,
                timing=self.timing,
                interval=2.0,
                max_interval=15.0,
                observe=lambda: f"Route53 says {seen['status']}",
            )
        except CheckFailed as exc:
            raise CheckFailed(
                f"{exc.message} The change was accepted and Route53 will apply it as one; "
                "verify again later, or compensate to put the previous weights back.",
                change_id=change_id,
                prior={"weights": {c: records[c].get("Weight") for c in weights}},
            ) from exc
        return change_id

    def apply(self) -> Applied:
        """Set the weights where they differ and wait for INSYNC; no change when all are in place.

        Raises UsageError when a record is missing (nothing changed) and
        CheckFailed when the change does not reach INSYNC in time.
        """
        records = self._records()
        prior = {c: r.get("Weight") for c, r in records.items()}
        change_id = self._set(records, self.target_weights, "rollback: shift weights")
        if change_id is None:
            return Applied(changed=False, detail={"weights": dict(self.target_weights)})
        return Applied(
            changed=True,
            prior={"weights": prior},
            detail={"change_id": change_id, "stale_for_s": _stale_for(records)},
        )

    def verify(self) -> list[Evidence]:
        """Read the records back; ok when every weight is exactly the target."""
        records = self._records()
        seen = {c: r.get("Weight") for c, r in records.items()}
        stale = _stale_for(records)
        ok = seen == self.target_weights
        note = f"clients may still reach the old colour for up to {_ttl_words(stale)} (the record's TTL)"
        if not ok:
            note = f"weights are {seen}, expected {self.target_weights}; " + note
        return [
            evidence(
                "route53:ListResourceRecordSets",
                {
                    "record_name": self.topology.record_name,
                    "weights": seen,
                    "expected": dict(self.target_weights),
                    "ttl": {c: r.get("TTL") for c, r in records.items()},
                    "stale_for_s": stale,
                },
                ok,
                note,
            )
        ]

    def compensation_colors(self, prior: dict[str, Any]) -> list[str]:
        """The colours `compensate(prior)` would send DNS traffic back to."""
        return sorted(c for c, w in dict(prior.get("weights") or {}).items() if int(w) > 0)

    def compensate(self, prior: dict[str, Any]) -> None:
        """Put back the weights apply replaced and wait for INSYNC; no call when already back."""
        weights = {c: int(w) for c, w in dict(prior.get("weights") or {}).items()}
        if weights:
            self._set(self._records(), weights, "rollback: compensate weights")


def _stale_for(records: dict[str, dict[str, Any]]) -> int | None:
    """The longest TTL among the records; None when all are aliases (the target's TTL applies)."""
    ttls = [int(r["TTL"]) for r in records.values() if "TTL" in r]
    return max(ttls) if ttls else None


def _ttl_words(ttl: int | None) -> str:
    return f"{ttl}s" if ttl is not None else "the alias target's TTL (60s for a load balancer)"
