"""Traffic step: set the ALB listener's (and rules') forward weights between colours.

Only the weights of the topology's target groups change; stickiness and every
other field of the forward action stay as they are, and a target group of the
forward config that the topology does not name keeps its weight. Before a
shift, each target group that will receive traffic must have at least one
routable target (see `TargetHealth.routable`).
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any

from rollback.aws.elbv2 import Actions, LoadBalancing, TargetHealth, forward_weights, with_weights
from rollback.errors import CheckFailed, UsageError
from rollback.models import Evidence, StepDescription, Topology
from rollback.steps import Applied, evidence
from rollback.waiting import Timing

MAX_WEIGHT = 999  # the ALB limit per target group
PREPARED_FRESH_S = 2.0  # reads `prepare` started are taken by `apply` within this many seconds


class TrafficStep:
    """Shift the listener's weighted forward action to `target_weights` (colour -> weight)."""

    kind = "traffic"

    def __init__(
        self,
        elbv2: LoadBalancing,
        topology: Topology,
        target_weights: dict[str, int],
        timing: Timing | None = None,
    ) -> None:
        _check_weights(topology, target_weights)
        self.elbv2 = elbv2
        self.topology = topology
        # A colour of the topology that is not named receives nothing.
        self.target_weights = {c: int(target_weights.get(c, 0)) for c in topology.target_groups}
        self.timing = timing or Timing()
        # (when, forward configs, receiving health): reads `prepare` started for `apply`
        self._prepared: (
            tuple[float, Future[dict[str, Actions]], dict[str, Future[list[TargetHealth]]]] | None
        ) = None

    @property
    def _wanted(self) -> dict[str, int]:
        """Target weights keyed by target group ARN."""
        return {self.topology.target_groups[c]: w for c, w in self.target_weights.items()}

    def _colour_of(self, arn: str) -> str:
        for colour, tg in self.topology.target_groups.items():
            if tg == arn:
                return colour
        return arn

    def _by_colour(self, weights: dict[str, int]) -> dict[str, int]:
        return {self._colour_of(arn): w for arn, w in weights.items()}

    def describe(self) -> StepDescription:
        """Reads the listener once to say from which weights to which."""
        current = forward_weights(self.elbv2.listener_actions(self.topology.listener_arn))
        split = ", ".join(f"{c} {w}" for c, w in self.target_weights.items())
        return StepDescription(
            kind=self.kind,
            summary=f"set the load balancer's forward weights to {split}",
            changes={
                "listener_arn": self.topology.listener_arn,
                "rule_arns": list(self.topology.rule_arns),
                "from": self._by_colour(current),
                "to": dict(self.target_weights),
            },
            reason="send users to the colour that runs the target version",
            expected_seconds=2.0,
        )

    def _targets(self) -> dict[str, Actions]:
        """Current actions of the listener and every topology rule, keyed by ARN."""
        found: dict[str, list[dict[str, Any]]] = {
            self.topology.listener_arn: self.elbv2.listener_actions(self.topology.listener_arn)
        }
        found.update(self.elbv2.rule_actions(list(self.topology.rule_arns)))
        return found

    def _merged(self, current: dict[str, int], where: str) -> dict[str, int]:
        """`current` with the topology's groups set to the target weights.

        Raises UsageError when a topology group is missing from `current`.
        """
        wanted = self._wanted
        missing = [self._colour_of(arn) for arn in wanted if arn not in current]
        if missing:
            raise UsageError(
                f"the {', '.join(missing)} target group of the topology is not in the forward "
                f"config of {where}; nothing was changed: fix the stack's `rollback` output or the listener.",
                missing=missing,
                where=where,
            )
        return {arn: wanted.get(arn, w) for arn, w in current.items()}

    def _require_routable(self, read: dict[str, Future[list[TargetHealth]]] | None = None) -> None:
        """Raise CheckFailed unless every receiving target group has a routable target.

        `read`: target-health reads already started, by colour.
        """
        for colour, weight in self.target_weights.items():
            if weight <= 0:
                continue
            arn = self.topology.target_groups[colour]
            health = read[colour].result() if read else self.elbv2.target_health(arn)
            if not any(t.routable for t in health):
                states = ", ".join(f"{t.target_id} {t.state}" for t in health) or "no targets"
                raise CheckFailed(
                    f"refusing to send traffic to {colour}: its target group has no healthy "
                    f"target ({states}); nothing was changed.",
                    colour=colour,
                    targets=[t.to_dict() for t in health],
                )

    def prepare(self) -> None:
        """Start the reads `apply` makes first (forward configs, receiving groups' health).

        The executor calls it under the stack lock, just before it writes the
        journal records that precede `apply`, so the reads overlap that write.
        `apply` takes them if they are at most PREPARED_FRESH_S old, else reads again.
        Reads given by `take_reads` that are still that fresh are kept instead.
        """
        if self._prepared is not None and self._fresh(self._prepared[0]):
            return
        self._prepared = (time.monotonic(), *self._start_reads())

    def take_reads(
        self, listener: Actions, health: Mapping[str, list[TargetHealth]], read_at: float
    ) -> bool:
        """Take what `apply` reads first from a read made under this run's lock (the plan's).

        `read_at`: time.monotonic() when that read started. The caller vouches
        that the lock was held when it started (a run that moves traffic holds
        it, so nothing of ours changed the listener since). Returns False, and
        takes nothing, when the read lacks something `apply` reads (the
        topology's rules, a receiving colour's health); `apply` still takes
        it only within PREPARED_FRESH_S of `read_at`, and reads again after.
        """
        receiving = [c for c, w in self.target_weights.items() if w > 0]
        if self.topology.rule_arns or not listener or any(c not in health for c in receiving):
            return False
        actions: Future[dict[str, Actions]] = Future()
        actions.set_result({self.topology.listener_arn: listener})
        found: dict[str, Future[list[TargetHealth]]] = {}
        for colour in receiving:
            found[colour] = Future()
            found[colour].set_result(list(health[colour]))
        self._prepared = (read_at, actions, found)
        return True

    @staticmethod
    def _fresh(read_at: float) -> bool:
        return time.monotonic() - read_at <= PREPARED_FRESH_S

    def _start_reads(
        self,
    ) -> tuple[Future[dict[str, Actions]], dict[str, Future[list[TargetHealth]]]]:
        """The forward configs and the receiving groups' health, read at once: one round trip."""
        pool = ThreadPoolExecutor(max_workers=3, thread_name_prefix="traffic-read")
        try:
            actions = pool.submit(self._targets)
            health = {
                c: pool.submit(self.elbv2.target_health, self.topology.target_groups[c])
                for c, w in self.target_weights.items()
                if w > 0
            }
        finally:
            pool.shutdown(wait=False)  # the reads run on; nothing else is submitted
        return actions, health

    def apply(self) -> Applied:
        """Set the weights where they differ; no mutating call when all are in place.

        Raises UsageError (topology names a group not in a forward config) or
        CheckFailed (a receiving group has no healthy target) before any change.
        If a later write fails, CheckFailed says which ARNs were already changed.
        """
        prepared, self._prepared = self._prepared, None
        if prepared is not None and self._fresh(prepared[0]):
            reading, health = prepared[1], prepared[2]
        else:
            reading, health = self._start_reads()
        actions = reading.result()
        plan: dict[str, tuple[dict[str, int], dict[str, int]]] = {}
        for arn, acts in actions.items():
            current = forward_weights(acts)
            merged = self._merged(current, arn)
            if merged != current:
                plan[arn] = (current, merged)
        if not plan:
            return Applied(changed=False, detail={"weights": dict(self.target_weights)})
        self._require_routable(health)
        prior: dict[str, dict[str, int]] = {}
        for arn, (current, merged) in plan.items():
            try:
                self._write(arn, with_weights(actions[arn], merged))
            except Exception as exc:
                if not prior:
                    raise
                raise CheckFailed(
                    f"shifting traffic failed at {arn} ({exc}); already changed: "
                    f"{', '.join(prior)}; compensate to put them back.",
                    prior={"weights": prior},
                    failed_at=arn,
                ) from exc
            prior[arn] = current
        return Applied(
            changed=True,
            prior={"weights": prior},
            detail={"changed": list(prior), "weights": dict(self.target_weights)},
        )

    def _write(self, arn: str, actions: list[dict[str, Any]]) -> None:
        if arn == self.topology.listener_arn:
            self.elbv2.set_listener_actions(arn, actions)
        else:
            self.elbv2.set_rule_actions(arn, actions)

    def verify(self) -> list[Evidence]:
        """Read the listener (and rules) back; each is ok when its weights are exactly the target."""
        wanted = self._wanted
        found: list[Evidence] = []
        listener = self.elbv2.listener_actions(self.topology.listener_arn)
        groups = {self.topology.listener_arn: listener}
        groups.update(self.elbv2.rule_actions(list(self.topology.rule_arns)))
        for arn, acts in groups.items():
            current = forward_weights(acts)
            seen = {arn_: current.get(arn_) for arn_ in wanted}
            ok = seen == wanted
            api = (
                "elbv2:DescribeListeners"
                if arn == self.topology.listener_arn
                else "elbv2:DescribeRules"
            )
            found.append(
                evidence(
                    api,
                    {
                        "arn": arn,
                        "weights": self._by_colour(current),
                        "expected": dict(self.target_weights),
                    },
                    ok,
                    ""
                    if ok
                    else f"weights are {self._by_colour(current)}, expected {self.target_weights}",
                )
            )
        return found

    def prior_weights(self, prior: dict[str, Any]) -> dict[str, int]:
        """The listener's weights by colour that `compensate(prior)` puts back."""
        weights = dict(prior.get("weights") or {}).get(self.topology.listener_arn) or {}
        return {self._colour_of(arn): int(w) for arn, w in dict(weights).items()}

    def compensation_colors(self, prior: dict[str, Any]) -> list[str]:
        """The colours `compensate(prior)` would send listener traffic back to."""
        weights = dict(prior.get("weights") or {}).get(self.topology.listener_arn) or {}
        return sorted(self._colour_of(arn) for arn, w in dict(weights).items() if int(w) > 0)

    def compensate(self, prior: dict[str, Any]) -> None:
        """Put back the weights apply replaced; skips what is already back (idempotent)."""
        for arn, weights in dict(prior.get("weights") or {}).items():
            acts = (
                self.elbv2.listener_actions(arn)
                if arn == self.topology.listener_arn
                else self.elbv2.rule_actions([arn])[arn]
            )
            restored = {a: int(w) for a, w in weights.items()}
            if forward_weights(acts) != restored:
                self._write(arn, with_weights(acts, restored))


def _check_weights(topology: Topology, target_weights: dict[str, int]) -> None:
    unknown = sorted(set(target_weights) - set(topology.target_groups))
    if unknown:
        raise UsageError(
            f"colour {', '.join(unknown)} has no target group in the topology "
            f"(it has {', '.join(sorted(topology.target_groups))}).",
        )
    bad = {c: w for c, w in target_weights.items() if not 0 <= w <= MAX_WEIGHT}
    if bad or not target_weights:
        raise UsageError(
            f"target weights must be 0..{MAX_WEIGHT} per colour, got {target_weights}."
        )
    if sum(target_weights.values()) == 0:
        raise UsageError("target weights are all 0: that would send no traffic anywhere.")
