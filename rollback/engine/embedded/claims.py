"""Never take over a resource another stack (or nobody) owns: a name given by the program must be free.

Some AWS create calls adopt or overwrite an existing resource of the same
name instead of failing: `CreateBucket` in us-east-1 answers 200 for a bucket
the account owns, `PutMetricAlarm` replaces an alarm, `CreateLoadBalancer`
returns (AWS) or duplicates (moto) one of the same name. Two stacks declaring
the same name would then share one physical resource, and destroying one
would delete the other's. Before such a create the engine checks that the
name is free and refuses otherwise; adopting an existing resource is what the
`import` option is for. Auto-named resources need no check (random suffix).

The checks an `up` makes before it changes anything (while the program's
code runs, gate.py) share one listing per kind where the service lists
names cheaply (`Listings`): one ListBuckets instead of a HeadBucket per
bucket. Nothing is created before the gate opens, so that listing is as
current for the last of those checks as for the first; checks made once
changes have started ask for the one name.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable
from typing import Any

from rollback.errors import EngineError


def _bucket(clients: Any, name: str) -> bool:
    from botocore.exceptions import ClientError

    try:
        clients("s3").head_bucket(Bucket=name)
    except ClientError as exc:
        code = str(exc.response.get("Error", {}).get("Code", ""))
        if code in {"404", "NoSuchBucket", "NotFound"}:
            return False
        raise
    return True


def _buckets(clients: Any) -> Iterable[str]:
    for page in clients("s3").get_paginator("list_buckets").paginate():
        yield from (bucket["Name"] for bucket in page.get("Buckets", []))


def _load_balancer(clients: Any, name: str) -> bool:
    from botocore.exceptions import ClientError

    try:
        found = clients("elbv2").describe_load_balancers(Names=[name])["LoadBalancers"]
    except ClientError as exc:
        if str(exc.response.get("Error", {}).get("Code", "")) == "LoadBalancerNotFound":
            return False
        raise
    return bool(found)


def _alarm(clients: Any, name: str) -> bool:
    found = clients("cloudwatch").describe_alarms(AlarmNames=[name])
    return bool(found.get("MetricAlarms") or found.get("CompositeAlarms"))


def _glue_job(clients: Any, name: str) -> bool:
    return _found(lambda: clients("glue").get_job(JobName=name), "EntityNotFoundException")


def _glue_trigger(clients: Any, name: str) -> bool:
    return _found(lambda: clients("glue").get_trigger(Name=name), "EntityNotFoundException")


def _redshift_subnet_group(clients: Any, name: str) -> bool:
    return _found(
        lambda: clients("redshift").describe_cluster_subnet_groups(ClusterSubnetGroupName=name),
        "ClusterSubnetGroupNotFoundFault",
    )


def _found(describe: Any, missing: str) -> bool:
    from botocore.exceptions import ClientError

    try:
        describe()
    except ClientError as exc:
        if str(exc.response.get("Error", {}).get("Code", "")) == missing:
            return False
        raise
    return True


TakenOne = Callable[[Any, str], bool]
ListAll = Callable[[Any], Iterable[str]]

# Type token -> (the input holding the name, whether one name is taken, every name
# taken or None when the service has no cheap listing).
_CHECKS: dict[str, tuple[str, TakenOne, ListAll | None]] = {
    "aws:s3/bucket:Bucket": ("bucket", _bucket, _buckets),
    "aws:lb/loadBalancer:LoadBalancer": ("name", _load_balancer, None),
    "aws:cloudwatch/metricAlarm:MetricAlarm": ("name", _alarm, None),
    "aws:glue/job:Job": ("name", _glue_job, None),
    "aws:glue/trigger:Trigger": ("name", _glue_trigger, None),
    "aws:redshift/subnetGroup:SubnetGroup": ("name", _redshift_subnet_group, None),
}


class Listings:
    """The names taken per kind (and per clients), each listed once, at its first check.

    For the checks of one `up` made before it changes anything; thread-safe.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._taken: dict[tuple[str, int], tuple[Any, frozenset[str]]] = {}

    def taken(self, token: str, clients: Any, list_all: ListAll) -> frozenset[str]:
        key = (token, id(clients))  # the clients are kept with their names: the id stays theirs
        with self._lock:
            if key not in self._taken:
                self._taken[key] = (clients, frozenset(list_all(clients)))
            return self._taken[key][1]


def ensure_free(
    token: str,
    urn: str,
    program_inputs: dict[str, Any],
    applier: Any,
    listings: Listings | None = None,
) -> None:
    """Raise EngineError when the program names a resource that already exists.

    With `listings` (only before any change), the name is looked up in one
    listing of its kind where there is one, else asked for.
    """
    check = _CHECKS.get(token)
    clients = getattr(applier, "clients", None)
    if check is None or clients is None:
        return
    key, taken, list_all = check
    name = program_inputs.get(key)
    if not isinstance(name, str) or not name or key in (program_inputs.get("__defaults") or []):
        return  # unnamed, or auto-named with a random suffix
    try:
        if listings is not None and list_all is not None:
            exists = name in listings.taken(token, clients, list_all)
        else:
            exists = taken(clients, name)
    except Exception:  # noqa: BLE001 a failed check must not hide the create's own error
        return
    if exists:
        raise EngineError(
            f"{urn} names {key} {name!r}, which already exists outside this stack, so it was not "
            "created: give it another name, or adopt it with the `import` option.",
            urn=urn,
            name=name,
        )
