"""Never take over a resource another stack (or nobody) owns: a name given by the program must be free.

Some AWS create calls adopt or overwrite an existing resource of the same
name instead of failing: `CreateBucket` in us-east-1 answers 200 for a bucket
the account owns, `PutMetricAlarm` replaces an alarm, `CreateLoadBalancer`
returns (AWS) or duplicates (moto) one of the same name. Two stacks declaring
the same name would then share one physical resource, and destroying one
would delete the other's. Before such a create the engine checks that the
name is free and refuses otherwise; adopting an existing resource is what the
`import` option is for. Auto-named resources need no check (random suffix).
"""

from __future__ import annotations

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


# Type token -> (the input holding the name, how to tell whether the name is taken).
_CHECKS = {
    "aws:s3/bucket:Bucket": ("bucket", _bucket),
    "aws:lb/loadBalancer:LoadBalancer": ("name", _load_balancer),
    "aws:cloudwatch/metricAlarm:MetricAlarm": ("name", _alarm),
    "aws:glue/job:Job": ("name", _glue_job),
    "aws:glue/trigger:Trigger": ("name", _glue_trigger),
    "aws:redshift/subnetGroup:SubnetGroup": ("name", _redshift_subnet_group),
}


def ensure_free(token: str, urn: str, program_inputs: dict[str, Any], applier: Any) -> None:
    """Raise EngineError when the program names a resource that already exists."""
    check = _CHECKS.get(token)
    clients = getattr(applier, "clients", None)
    if check is None or clients is None:
        return
    key, taken = check
    name = program_inputs.get(key)
    if not isinstance(name, str) or not name or key in (program_inputs.get("__defaults") or []):
        return  # unnamed, or auto-named with a random suffix
    try:
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
