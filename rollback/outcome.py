"""The outcome check: at the end of a run, prove what users get, read from the cloud.

Each step proves its own write; this proves the result (DESIGN.md, "The
outcome is the proof"). It reads:

- the listener and the topology's rules: every target group with weight > 0
  belongs to a colour of the topology, and each such colour runs the target
  version, as its targets' version tag (instances) or its target group's tag
  says -- never as a release record says;
- Route53: the weighted records send the same shares to the same colours;
- health: each served colour answers its health URLs;
- the artifact at the topology's location hashes to the release's digest;
- the stack's live state matches the target release's checkpoint;
- the registry's current-release pointer names the target.

A run succeeds only when every check holds; otherwise the sentence says which
version users are actually served.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from rollback.models import Evidence, Topology
from rollback.ownership import LiveTraffic, read_traffic
from rollback.steps import evidence

if TYPE_CHECKING:
    from rollback.aws.session import Clients


@dataclass(frozen=True)
class Expected:
    """What the run promised users. Unset parts are not checked."""

    version: str | None = None  # the version every served colour must run
    colours: frozenset[str] | None = None  # exactly these colours must be served
    artifact: tuple[str, str, str] | None = None  # bucket, key, sha256 hex
    stack: bool = False  # the stack's live state must match the release of `version`
    current: str | None = None  # the registry's current pointer must name this


@dataclass(frozen=True)
class OutcomeReport:
    """The outcome check's verdict, the evidence behind it and one sentence for people."""

    ok: bool
    sentence: str
    served: dict[str, str | None]  # served colour -> the version it runs (None: unknown)
    evidence: tuple[Evidence, ...] = field(default_factory=tuple)

    def to_dict(self) -> dict[str, Any]:
        from dataclasses import asdict

        return {
            "ok": self.ok,
            "sentence": self.sentence,
            "served": dict(self.served),
            "evidence": [asdict(e) for e in self.evidence],
        }


HealthProbe = Callable[[str], list[Evidence]]  # colour -> evidence of its health URLs
StackProbe = Callable[[str], Evidence]  # version -> does the live stack match it
CurrentProbe = Callable[[], str | None]


@dataclass
class OutcomeCheck:
    """Reads the cloud for one stack's topology and judges it against `Expected`."""

    clients: Clients
    topology: Topology
    health: HealthProbe | None = None
    stack: StackProbe | None = None
    current: CurrentProbe | None = None

    def check(self, expected: Expected) -> OutcomeReport:
        """Never raises for what it reads: a failed read is failed evidence."""
        found: list[Evidence] = []
        served: dict[str, str | None] = {}
        try:
            traffic = self._traffic()
        except Exception as exc:  # noqa: BLE001 - the verdict must say it could not read
            found.append(
                evidence("elbv2:DescribeListeners", {}, False, f"could not read traffic: {exc}")
            )
            return OutcomeReport(
                False, f"could not read where users are served: {exc}", served, tuple(found)
            )
        found += self._traffic_evidence(traffic, expected)
        colours = traffic.served()
        try:
            versions = self.versions(colours)
        except Exception as exc:  # noqa: BLE001
            versions = {c: None for c in colours}
            found.append(
                evidence("versions", {"colours": colours}, False, f"could not read versions: {exc}")
            )
        served = {c: versions.get(c) for c in colours}
        for colour in colours:
            runs = served[colour]
            ok = runs is not None and (expected.version is None or runs == expected.version)
            found.append(
                evidence(
                    f"version of {colour}",
                    {
                        "colour": colour,
                        "runs": runs,
                        "expected": expected.version,
                        "tag": self.topology.version_tag,
                    },
                    ok,
                    ""
                    if ok
                    else (
                        f"colour {colour} runs {runs}, not {expected.version}"
                        if runs
                        else f"no {self.topology.version_tag} tag on colour {colour}'s targets or target group says what it runs"
                    ),
                )
            )
        if self.health is not None:
            for colour in colours:
                try:
                    found += self.health(colour)
                except Exception as exc:  # noqa: BLE001
                    found.append(evidence(f"health of {colour}", {}, False, str(exc)))
        if expected.artifact is not None:
            found.append(self._artifact(*expected.artifact))
        if expected.stack and expected.version and self.stack is not None:
            try:
                found.append(self.stack(expected.version))
            except Exception as exc:  # noqa: BLE001
                found.append(evidence("stack", {}, False, f"could not read the stack: {exc}"))
        if expected.current is not None and self.current is not None:
            now = self.current()
            found.append(
                evidence(
                    "registry.current",
                    {"current": now, "expected": expected.current},
                    now == expected.current,
                    ""
                    if now == expected.current
                    else f"the current release is {now}, not {expected.current}",
                )
            )
        ok = all(e.ok for e in found)
        return OutcomeReport(
            ok, _sentence(ok, served, traffic, expected, found), served, tuple(found)
        )

    def _traffic(self) -> LiveTraffic:
        from rollback.aws.elbv2 import LoadBalancing
        from rollback.aws.route53 import Dns

        topo = self.topology
        dns = Dns(self.clients("route53")) if topo.zone_id and topo.set_identifiers else None
        return read_traffic(LoadBalancing(self.clients("elbv2")), dns, topo)

    def _traffic_evidence(self, traffic: LiveTraffic, expected: Expected) -> list[Evidence]:
        found = [
            evidence(
                "elbv2:DescribeListeners",
                traffic.to_dict(),
                not traffic.foreign and bool(traffic.served()),
                ""
                if not traffic.foreign and traffic.served()
                else (
                    f"target groups outside the topology receive traffic: {traffic.foreign}"
                    if traffic.foreign
                    else "no colour receives traffic"
                ),
            )
        ]
        if expected.colours is not None:
            ok = set(traffic.served()) == set(expected.colours)
            found.append(
                evidence(
                    "served colours",
                    {"served": traffic.served(), "expected": sorted(expected.colours)},
                    ok,
                    ""
                    if ok
                    else f"users are served by {', '.join(traffic.served()) or 'nothing'}, expected {', '.join(sorted(expected.colours))}",
                )
            )
        if traffic.dns is not None:
            ok = _shares(traffic.dns) == _shares(traffic.listener)
            found.append(
                evidence(
                    "route53:ListResourceRecordSets",
                    {"dns": traffic.dns, "listener": traffic.listener},
                    ok,
                    ""
                    if ok
                    else f"Route53 weights {traffic.dns} disagree with the listener's {traffic.listener}",
                )
            )
        for arn, rule in traffic.rules.items():
            ok = _shares(rule) == _shares(traffic.listener)
            found.append(
                evidence(
                    "elbv2:DescribeRules",
                    {"rule": arn, "weights": rule, "listener": traffic.listener},
                    ok,
                    ""
                    if ok
                    else f"rule {arn} weights {rule} disagree with the listener's {traffic.listener}",
                )
            )
        return found

    def versions(self, colours: list[str]) -> dict[str, str | None]:
        """Colour -> the version its targets (or target group) are tagged with; None when none says."""
        from rollback.aws.ec2 import Instances
        from rollback.aws.elbv2 import LoadBalancing

        elbv2 = LoadBalancing(self.clients("elbv2"))
        tag = self.topology.version_tag
        found: dict[str, str | None] = {}
        for colour in colours:
            arn = self.topology.target_groups[colour]
            ids = [t.target_id for t in elbv2.target_health(arn)]
            instances = [i for i in ids if i.startswith("i-")]
            tags = Instances(self.clients("ec2")).tags(instances) if instances else {}
            seen = {tags[i][tag] for i in instances if tag in tags.get(i, {})}
            if len(seen) > 1:
                found[colour] = "mixed " + "+".join(sorted(seen))
            elif seen:
                found[colour] = seen.pop()
            else:
                found[colour] = elbv2.target_group_tags(arn).get(tag)
        return found

    def _artifact(self, bucket: str, key: str, sha256: str) -> Evidence:
        from rollback.aws.s3 import Objects, sha256_b64

        where = f"s3://{bucket}/{key}"
        try:
            head = Objects(self.clients("s3")).head(bucket, key)
        except Exception as exc:  # noqa: BLE001
            return evidence(
                "s3:HeadObject", {"object": where}, False, f"could not read {where}: {exc}"
            )
        got = head.checksum_sha256 if head else None
        ok = got == sha256_b64(sha256)
        return evidence(
            "s3:HeadObject",
            {"object": where, "checksum_sha256": got, "expected_sha256": sha256},
            ok,
            ""
            if ok
            else (
                f"{where} does not exist"
                if head is None
                else f"{where} is not the release's artifact"
            ),
        )


def _shares(weights: dict[str, int]) -> dict[str, float]:
    total = sum(w for w in weights.values() if w > 0)
    return {c: round(w / total, 3) for c, w in sorted(weights.items()) if w > 0} if total else {}


def _sentence(
    ok: bool,
    served: dict[str, str | None],
    traffic: LiveTraffic,
    expected: Expected,
    found: list[Evidence],
) -> str:
    shares = _shares(traffic.listener)
    users = (
        ", ".join(
            f"{served[c] or 'an unknown version'} (colour {c}, {shares.get(c, 0) * 100:.0f}% of the listener)"
            for c in sorted(served)
        )
        or "nothing (no colour receives traffic)"
    )
    if ok:
        return f"Outcome verified: users are served {users}; every check read back from the cloud holds."
    failed = "; ".join(e.note or e.api for e in found if not e.ok)
    want = f", not {expected.version}" if expected.version else ""
    return f"Outcome check failed: users are served {users}{want}. {failed}."
