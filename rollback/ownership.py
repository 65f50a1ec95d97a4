"""One owner of traffic: after the first deploy, users move only when the toolkit moves them.

Listener and rule forward weights and Route53 weights are the toolkit's, not
the stack program's (DESIGN.md, "One owner of traffic"). The toolkit keeps
each stack's *desired traffic* (colour -> weight) in the store at
`traffic/<project>/<stack>.json`, written whenever a traffic step it ran is
verified (rollback, emergency, cutover, watch's revert, abort). Programs
declare the weights with `ignore_changes` so that no `up` changes them; when
a program does not, `TrafficOwner.hold` runs after every apply (`stack up`, `stack
reapply`, the rollback's stack step), puts the desired traffic back, verifies
it and warns, naming the resource and the fix. Two owners of one field is how
a run ends with users on the wrong version while every step passed.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from rollback.errors import CheckFailed, IntegrityError, NotFound
from rollback.models import Checkpoint, Evidence, Topology
from rollback.steps import evidence

if TYPE_CHECKING:
    from rollback.aws.elbv2 import LoadBalancing
    from rollback.aws.route53 import Dns
    from rollback.aws.session import Clients
    from rollback.store import Store
    from rollback.waiting import Timing

log = logging.getLogger(__name__)

FIX = (
    "declare the weights as the toolkit's: "
    '`opts=pulumi.ResourceOptions(ignore_changes=["defaultActions"])` on the listener '
    '(`["actions"]` on a listener rule) and `ignore_changes=["weightedRoutingPolicies"]` '
    "on each weighted Route53 record; see docs/topology.md"
)


@dataclass(frozen=True)
class DesiredTraffic:
    """Where the toolkit last put a stack's users: colour -> weight, who set it and when."""

    weights: dict[str, int]
    set_by: str
    at: str

    def to_dict(self) -> dict[str, Any]:
        return {"weights": dict(self.weights), "set_by": self.set_by, "at": self.at}


def desired_key(stack: str) -> str:
    return f"traffic/{stack}.json"


def read_desired(store: Store, stack: str) -> DesiredTraffic | None:
    """The stack's desired traffic, or None before the toolkit owns it; IntegrityError if unreadable."""
    try:
        doc = json.loads(store.get_doc(desired_key(stack)))
    except NotFound:
        return None
    except ValueError as exc:
        raise _unreadable(stack, f"it is not JSON: {exc}") from exc
    try:
        weights = {str(c): int(w) for c, w in dict(doc["weights"]).items()}
    except (KeyError, TypeError, ValueError) as exc:
        raise _unreadable(stack, "it holds no colour weights") from exc
    return DesiredTraffic(weights, str(doc.get("set_by", "")), str(doc.get("at", "")))


def _unreadable(stack: str, problem: str) -> IntegrityError:
    return IntegrityError(
        f"the desired traffic of {stack} is unreadable ({problem}); restore it from a backup of "
        "the store, or delete it and let the next verified traffic step record it again.",
        key=desired_key(stack),
    )


def write_desired(store: Store, stack: str, weights: dict[str, int], set_by: str) -> DesiredTraffic:
    """Record where users should be from now on (after a verified traffic change)."""
    desired = DesiredTraffic(
        {c: int(w) for c, w in weights.items()},
        set_by,
        datetime.now(UTC).isoformat(timespec="milliseconds"),
    )
    store.put_doc(
        desired_key(stack), json.dumps(desired.to_dict(), indent=2, sort_keys=True).encode()
    )
    return desired


@dataclass(frozen=True)
class LiveTraffic:
    """Where users are now, as the load balancer and Route53 report it."""

    listener: dict[str, int]  # colour -> weight on the listener's forward action
    rules: dict[str, dict[str, int]]  # rule ARN -> colour -> weight
    dns: dict[str, int] | None  # colour -> Route53 weight; None without weighted records
    foreign: dict[str, int] = field(
        default_factory=dict
    )  # target group not in the topology -> weight

    def served(self) -> list[str]:
        """Colours that receive requests through the listener or any topology rule."""
        colours = {c for c, w in self.listener.items() if w > 0}
        for weights in self.rules.values():
            colours |= {c for c, w in weights.items() if w > 0}
        return sorted(colours)

    def matches(self, weights: dict[str, int]) -> bool:
        """Whether listener, rules and DNS all carry exactly `weights`."""
        wanted = {c: int(weights.get(c, 0)) for c in self.listener}
        if self.listener != wanted or any(
            {c: r.get(c, 0) for c in wanted} != wanted for r in self.rules.values()
        ):
            return False
        return self.dns is None or {c: self.dns.get(c, 0) for c in wanted} == wanted

    def to_dict(self) -> dict[str, Any]:
        return {
            "listener": dict(self.listener),
            "rules": {k: dict(v) for k, v in self.rules.items()},
            "dns": dict(self.dns) if self.dns is not None else None,
            "foreign": dict(self.foreign),
        }

    def words(self) -> str:
        text = "listener " + _split(self.listener)
        if self.dns is not None:
            text += ", Route53 " + _split(self.dns)
        return text


def read_traffic(elbv2: LoadBalancing, dns: Dns | None, topology: Topology) -> LiveTraffic:
    """Read the listener, the topology's rules and the weighted records (reads only)."""
    from rollback.aws.elbv2 import forward_weights

    colour_of = {arn: c for c, arn in topology.target_groups.items()}
    foreign: dict[str, int] = {}

    def by_colour(actions: list[dict[str, Any]]) -> dict[str, int]:
        weights = forward_weights(actions)
        for arn, w in weights.items():
            if arn not in colour_of and w > 0:
                foreign[arn] = w
        return {c: weights.get(arn, 0) for c, arn in topology.target_groups.items()}

    listener = by_colour(elbv2.listener_actions(topology.listener_arn))
    rules = {
        arn: by_colour(acts) for arn, acts in elbv2.rule_actions(list(topology.rule_arns)).items()
    }
    records: dict[str, int] | None = None
    if dns is not None and topology.zone_id and topology.set_identifiers:
        colour = {sid: c for c, sid in topology.set_identifiers.items()}
        records = {c: 0 for c in topology.set_identifiers}
        for r in dns.record_sets(topology.zone_id, topology.record_name, topology.record_type):
            if r.get("SetIdentifier") in colour:
                records[colour[r["SetIdentifier"]]] = int(r.get("Weight", 0))
    return LiveTraffic(listener, rules, records, foreign)


@dataclass(frozen=True)
class Held:
    """What `TrafficOwner.hold` found and did after an apply."""

    desired: dict[str, int]
    found: LiveTraffic
    restored: bool
    warnings: tuple[str, ...] = ()
    evidence: tuple[Evidence, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        return {
            "desired": dict(self.desired),
            "found": self.found.to_dict(),
            "restored": self.restored,
            "warnings": list(self.warnings),
            # The read-back that proves a put-back (empty when nothing moved).
            "evidence": [asdict(e) for e in self.evidence],
        }


@dataclass
class TrafficOwner:
    """The toolkit's hold on one stack's traffic: remember it, check it, put it back."""

    clients: Clients
    store: Store
    stack: str
    timing: Timing | None = None

    def desired(self) -> DesiredTraffic | None:
        return read_desired(self.store, self.stack)

    def remember(self, weights: dict[str, int], set_by: str) -> DesiredTraffic:
        """Record `weights` as where users belong (after a verified traffic change)."""
        return write_desired(self.store, self.stack, weights, set_by)

    def read(self, topology: Topology) -> LiveTraffic:
        from rollback.aws.elbv2 import LoadBalancing
        from rollback.aws.route53 import Dns

        dns = (
            Dns(self.clients("route53")) if topology.zone_id and topology.set_identifiers else None
        )
        return read_traffic(LoadBalancing(self.clients("elbv2")), dns, topology)

    def check(self, topology: Topology) -> Evidence:
        """Read-only: whether the cloud serves the desired traffic."""
        desired = self.desired()
        found = self.read(topology)
        ok = desired is None or found.matches(desired.weights)
        return evidence(
            "traffic is where the toolkit put it",
            {"found": found.to_dict(), "desired": desired.to_dict() if desired else None},
            ok,
            ""
            if ok
            else f"users are at {found.words()}, not at the desired {_split(desired.weights) if desired else ''}",
        )

    def holder(
        self, set_by: str, *, quiet: bool = False
    ) -> Callable[[Topology, Checkpoint], dict[str, Any]]:
        """`hold` as the callback `stacks.up`/`stacks.reapply` take.

        With `quiet`, a failure to put traffic back is returned as
        `traffic_error` instead of raised (the stack step's verify then fails).
        """

        def hold(topology: Topology, checkpoint: Checkpoint) -> dict[str, Any]:
            try:
                held = self.hold(topology, set_by=set_by, checkpoint=checkpoint)
            except CheckFailed as exc:
                if not quiet:
                    raise
                return {"traffic_error": exc.message}
            return held.to_dict()

        return hold

    def hold(
        self, topology: Topology, *, set_by: str, checkpoint: Checkpoint | None = None
    ) -> Held:
        """After an apply: keep users where the toolkit put them.

        Without desired traffic yet (the first deploy), what the cloud serves
        now becomes the desired traffic: from here on the toolkit owns it.
        Otherwise, when the apply moved the weights, the desired ones are
        written back and verified, and the warning names the resources and the
        `ignore_changes` fix. Raises CheckFailed when they cannot be put back.
        """
        from rollback.aws.elbv2 import LoadBalancing
        from rollback.aws.route53 import Dns

        found = self.read(topology)
        desired = self.desired()
        if desired is None:
            self.remember(found.listener, set_by)
            return Held(found.listener, found, restored=False)
        if found.matches(desired.weights):
            return Held(desired.weights, found, restored=False)
        dns = (
            Dns(self.clients("route53")) if topology.zone_id and topology.set_identifiers else None
        )
        try:
            found_ev = _put_back(
                LoadBalancing(self.clients("elbv2")), dns, topology, desired.weights, self.timing
            )
        except Exception as exc:
            raise CheckFailed(
                f"the apply moved users ({found.words()}) and putting back the desired traffic "
                f"({_split(desired.weights)}) failed: {exc}",
                desired=desired.weights,
            ) from exc
        bad = [e for e in found_ev if not e.ok]
        if bad:
            raise CheckFailed(
                f"the apply moved users ({found.words()}) and putting back the desired traffic "
                f"({_split(desired.weights)}) failed: {'; '.join(e.note for e in bad)}.",
                desired=desired.weights,
            )
        moved = _moved_resources(topology, found, desired.weights, checkpoint)
        warning = (
            f"the apply changed the weights of {', '.join(moved)} ({found.words()}); "
            f"the toolkit put users back where it had them ({_split(desired.weights)}, set by "
            f"{desired.set_by}) and verified it. To stop this, {FIX}."
        )
        log.warning("%s", warning)
        return Held(
            desired.weights, found, restored=True, warnings=(warning,), evidence=tuple(found_ev)
        )


def _put_back(
    elbv2: LoadBalancing,
    dns: Dns | None,
    topology: Topology,
    weights: dict[str, int],
    timing: Timing | None,
) -> list[Evidence]:
    from rollback.steps.dns import DnsStep
    from rollback.steps.traffic import TrafficStep

    traffic = TrafficStep(elbv2, topology, weights, timing)
    traffic.apply()
    found = traffic.verify()
    if dns is not None:
        step = DnsStep(dns, topology, weights, timing)
        step.apply()
        found += step.verify()
    return found


def _moved_resources(
    topology: Topology, found: LiveTraffic, weights: dict[str, int], checkpoint: Checkpoint | None
) -> list[str]:
    """Names of what the apply moved: Pulumi URNs when the checkpoint is at hand, else ARNs."""
    wanted = {c: int(weights.get(c, 0)) for c in topology.target_groups}
    names: list[str] = []
    if found.listener != wanted:
        names.append(
            _urn_of(checkpoint, "arn", topology.listener_arn) or f"listener {topology.listener_arn}"
        )
    for arn, rule in found.rules.items():
        if rule != wanted:
            names.append(_urn_of(checkpoint, "arn", arn) or f"listener rule {arn}")
    if found.dns is not None and found.dns != {c: wanted.get(c, 0) for c in found.dns}:
        for colour, sid in topology.set_identifiers.items():
            if found.dns.get(colour) != wanted.get(colour, 0):
                names.append(
                    _urn_of(checkpoint, "setIdentifier", sid, "aws:route53/record:Record")
                    or f"Route53 record {topology.record_name} ({sid})"
                )
    return names or ["the traffic resources"]


def _urn_of(
    checkpoint: Checkpoint | None, key: str, value: str, type_: str | None = None
) -> str | None:
    if checkpoint is None:
        return None
    for res in checkpoint.resources:
        if type_ and res.get("type") != type_:
            continue
        if (res.get("outputs") or {}).get(key) == value:
            return str(res.get("urn"))
    return None


def _split(weights: dict[str, int]) -> str:
    return " / ".join(f"{c} {w}" for c, w in sorted(weights.items()))
