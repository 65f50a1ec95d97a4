"""Small real steps for the executor's tests: each writes an S3 object and reads it back.

They honour the Step contract against whatever S3 boto3 reaches (in-process
`mock_aws()` or the moto server through AWS_ENDPOINT_URL), so tests check
outcomes against the cloud, not against what the code meant to do.

A crash is simulated when ROLLBACK_TEST_CRASH is `<step>:<point>` (point:
apply-start, apply-end, verify-start): in-process by raising `SimulatedCrash`
(a BaseException, which the executor does not catch), or, when
ROLLBACK_TEST_CRASH_KILL=1, by SIGKILL of the process itself.

Run as a script (`python -m tests.unit.run_steps execute|resume ...`) it
executes or resumes a run in a new process, as `rollback to` / `resume` would.
"""

from __future__ import annotations

import json
import os
import signal
import sys
from pathlib import Path
from typing import Any

from rollback.executor import Executor, RunResult
from rollback.models import Evidence, StepDescription
from rollback.plan import Plan, PlannedStep, StepBuilder
from rollback.steps import Applied, evidence

CRASH_ENV = "ROLLBACK_TEST_CRASH"
KILL_ENV = "ROLLBACK_TEST_CRASH_KILL"


class SimulatedCrash(BaseException):
    """The process 'dies' here: not an Exception, so no step failure is recorded."""


def crash_point(step: str, point: str) -> None:
    if os.environ.get(CRASH_ENV) != f"{step}:{point}":
        return
    if os.environ.get(KILL_ENV) == "1":
        os.kill(os.getpid(), signal.SIGKILL)
    raise SimulatedCrash(f"{step}:{point}")


def read_object(s3: Any, bucket: str, key: str) -> str | None:
    try:
        body = s3.get_object(Bucket=bucket, Key=key)["Body"].read()
    except s3.exceptions.NoSuchKey:
        return None
    return str(body.decode())


class ObjectStep:
    """Set `key` to `value`; verify reads it back and expects `expect` (default: value).

    A plan can make verify fail for real by expecting what apply does not write.
    """

    def __init__(
        self, s3: Any, name: str, kind: str, bucket: str, key: str, value: str, expect: str | None
    ) -> None:
        self.s3, self.name, self.kind = s3, name, kind
        self.bucket, self.key, self.value = bucket, key, value
        self.expect = value if expect is None else expect

    def describe(self) -> StepDescription:
        return StepDescription(
            kind=self.kind, summary=f"set s3://{self.bucket}/{self.key} to {self.value}"
        )

    def apply(self) -> Applied:
        crash_point(self.name, "apply-start")
        current = read_object(self.s3, self.bucket, self.key)
        if current == self.value:
            return Applied(changed=False, prior={"content": current})
        self.s3.put_object(Bucket=self.bucket, Key=self.key, Body=self.value.encode())
        crash_point(self.name, "apply-end")
        return Applied(changed=True, prior={"content": current})

    def verify(self) -> list[Evidence]:
        crash_point(self.name, "verify-start")
        seen = read_object(self.s3, self.bucket, self.key)
        ok = seen == self.expect
        return [
            evidence(
                "s3:GetObject",
                {"bucket": self.bucket, "key": self.key, "content": seen},
                ok,
                "" if ok else f"content is {seen!r}, expected {self.expect!r}",
            )
        ]

    def compensate(self, prior: dict[str, Any]) -> None:
        if prior.get("content") is None:
            self.s3.delete_object(Bucket=self.bucket, Key=self.key)
        else:
            self.s3.put_object(Bucket=self.bucket, Key=self.key, Body=prior["content"].encode())


class ColourStep(ObjectStep):
    """A traffic step: the object `live` names the colour that takes traffic."""

    def compensation_colors(self, prior: dict[str, Any]) -> list[str]:
        return [prior["content"]] if prior.get("content") else []


def colour_healthy(s3: Any, bucket: str, colour: str) -> bool:
    """The test's health check: object `health/<colour>` says `ok`."""
    return read_object(s3, bucket, f"health/{colour}") == "ok"


def object_step(
    name: str, key: str, value: str, *, kind: str = "stack", expect: str | None = None
) -> PlannedStep:
    params = {"key": key, "value": value, "expect": expect}
    summary = f"set {key} to {value}"
    return PlannedStep(name, kind, StepDescription(kind=kind, summary=summary), params)


def builder_for(s3: Any, bucket: str) -> StepBuilder:
    def build(planned: PlannedStep) -> ObjectStep:
        cls = ColourStep if planned.kind in ("traffic", "dns") else ObjectStep
        p = planned.params
        return cls(s3, planned.name, planned.kind, bucket, p["key"], p["value"], p.get("expect"))

    return build


def main(argv: list[str]) -> int:
    """execute|resume STORE_DIR BUCKET (PLAN_JSON | RUN_ID): one run in this process."""
    import boto3

    from rollback.store.local import LocalStore

    mode, store_dir, bucket, arg = argv
    s3 = boto3.client("s3", region_name="us-east-1")
    store = LocalStore(Path(store_dir))
    if mode == "execute":
        plan = Plan.from_dict(json.loads(Path(arg).read_text()))
        executor = Executor(store, plan.stack, builder_for(s3, bucket))
        result: RunResult = executor.execute(plan, actor="subprocess")
    else:
        executor = Executor(store, "webapp/dev", builder_for(s3, bucket))
        result = executor.resume(arg, actor="subprocess")
    print(json.dumps(result.to_dict()))
    return 0 if result.ok else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
