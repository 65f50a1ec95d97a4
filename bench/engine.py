"""Benchmark: the embedded engine's `up` of the reference stack, from empty and unchanged.

Run as `python bench/engine.py`. Starts the embedded cloud as `rollback cloud
start` does (`rollback.cloud.start`: moto's server in its own process on a free
loopback port), points AWS_ENDPOINT_URL at it (fake credentials, the dev
stack's passphrase), then in-process brings the reference stack (Pulumi.yaml, stacks/webapp, stack
`dev`) up from an empty cloud, and `up` again without any change. Every AWS
call is counted by a botocore `before-call` handler on the session the
engine's clients use; mutating calls are those not named Describe*, List*,
Get* or Head*. For each `up` it prints the wall time, the total and the
mutating calls, and which operations mutated; then the no-change time as a
ratio of the from-empty time.

Then a generated program of GENERATED_COUNT (200) independent resources
(buckets, SNS topics, SSM parameters, SQS queues in equal parts): the same
creates done with bare boto3 (one call each, on the same server) are timed as
the baseline, then the engine's `up` from empty and a no-change `up`. It
prints the from-empty/boto3 time ratio (goal <= 1.5), the calls per resource
of the no-change `up` (goal <= 1) and its mutating calls (goal 0). The last
line is `engine_generated_up_vs_boto3_ratio: <x>`. The stores are temporary
directories, removed afterwards.

The server runs in its own process because every user's does: a server in
this process (moto's ThreadedMotoServer, as this benchmark used until
2026-12-01) would charge its CPU to the GIL the engine's threads need, which
no real run shares, and the bare boto3 baseline, one call at a time, would not
notice. Both figures are in the closing notes of issue 11.
"""

from __future__ import annotations

import os
import sys
import tempfile
import time
import warnings
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

# bench/rollback.py would shadow the package when a script here runs: the checkout comes first.
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

ROOT = Path(__file__).resolve().parent.parent
STACK = "dev"
PROJECT = "webapp"
READ_ONLY_PREFIXES = ("Describe", "List", "Get", "Head")
GENERATED_COUNT = 200


@dataclass
class CallCounter:
    """botocore `before-call` handler: counts every call and each mutating operation."""

    total: int = 0
    mutating: Counter[str] = field(default_factory=Counter)

    def __call__(self, model: Any, **_: Any) -> None:
        self.total += 1
        if not model.name.startswith(READ_ONLY_PREFIXES):
            self.mutating[f"{model.service_model.service_name}:{model.name}"] += 1

    def reset(self) -> None:
        self.total = 0
        self.mutating.clear()


@dataclass(frozen=True)
class Measure:
    seconds: float
    total_calls: int
    mutating: dict[str, int]
    changes: dict[str, int]

    @property
    def mutating_calls(self) -> int:
        return sum(self.mutating.values())


def measure_up(engine: Any, counter: CallCounter, config: Any) -> Measure:
    counter.reset()
    start = time.perf_counter()
    engine.up(ROOT, STACK, config)
    seconds = time.perf_counter() - start
    changes = Counter(change.op for change in engine.last_changes)
    return Measure(seconds, counter.total, dict(counter.mutating), dict(changes))


def report(label: str, m: Measure) -> None:
    changes = ", ".join(f"{n} {op}" for op, n in sorted(m.changes.items()))
    print(
        f"{label:<16} {m.seconds:7.2f} s  calls {m.total_calls:4d}  "
        f"mutating {m.mutating_calls:4d}  ({changes})"
    )
    for operation, n in sorted(m.mutating.items()):
        print(f"    {n:3d} x {operation}")


def main() -> int:
    from rollback import cloud

    # Noise: pulumi_aws's deprecation warnings.
    warnings.simplefilter("ignore", DeprecationWarning)
    os.environ.update(
        {
            "AWS_ACCESS_KEY_ID": "testing",
            "AWS_SECRET_ACCESS_KEY": "testing",
            "AWS_DEFAULT_REGION": "us-east-1",
            "AWS_REGION": "us-east-1",
            "AWS_CONFIG_FILE": os.devnull,
            "AWS_SHARED_CREDENTIALS_FILE": os.devnull,
            "PULUMI_CONFIG_PASSPHRASE": "test-passphrase",
        }
    )
    os.environ.pop("AWS_PROFILE", None)
    with tempfile.TemporaryDirectory(prefix="bench-engine-") as tmp:
        endpoint = cloud.start(Path(tmp) / "cloud").url
        try:
            os.environ["AWS_ENDPOINT_URL"] = endpoint
            first, again = run(endpoint, Path(tmp))
            baseline, generated_first, generated_again = run_generated(
                endpoint, Path(tmp), GENERATED_COUNT
            )
        finally:
            cloud.stop(Path(tmp) / "cloud")

    print("reference stack (stacks/webapp, stack dev):")
    report("up from empty", first)
    report("up, no change", again)
    print(f"nochange/from-empty time ratio: {again.seconds / first.seconds:.3f}")
    print(f"generated program of {GENERATED_COUNT} resources:")
    print(f"{'bare boto3':<16} {baseline:7.2f} s  calls {GENERATED_COUNT:4d}  (one create each)")
    report("up from empty", generated_first)
    report("up, no change", generated_again)
    ratio = generated_first.seconds / baseline
    reads_per_resource = generated_again.total_calls / GENERATED_COUNT
    print(f"up from empty / bare boto3 time ratio: {ratio:.2f} (goal <= 1.5)")
    print(
        f"no-change up: {reads_per_resource:.2f} calls per resource (goal <= 1), "
        f"{generated_again.mutating_calls} mutating (goal 0)"
    )
    print(
        f"engine_nochange_mutating_calls: {again.mutating_calls + generated_again.mutating_calls}"
    )
    print(f"engine_generated_up_vs_boto3_ratio: {ratio:.2f}")
    return 0


def counted_session() -> tuple[Any, CallCounter]:
    """A boto3 session whose every call is counted (make_session's botocore session has no
    boto3 event surface; Clients takes either)."""
    import boto3

    session = boto3.Session(region_name="us-east-1")
    counter = CallCounter()
    session.events.register("before-call.*.*", counter)
    return session, counter


def run(endpoint: str, tmp: Path) -> tuple[Measure, Measure]:
    from rollback.aws.session import Clients
    from rollback.engine.embedded.engine import EmbeddedEngine
    from rollback.engine.embedded.stack_config import load_stack_config
    from rollback.store.local import LocalStore

    session, counter = counted_session()
    clients = Clients(session, endpoint_url=endpoint)
    store = LocalStore(tmp / "store")
    config = load_stack_config(ROOT, STACK, PROJECT)
    first = measure_up(EmbeddedEngine(store, clients, PROJECT), counter, config)
    # A fresh engine, as a second `rollback stack up` would build: state comes from the store.
    again = measure_up(EmbeddedEngine(store, clients, PROJECT), counter, config)
    return first, again


# -- a generated program of many resources ------------------------------------

GENERATED_KINDS = 4  # buckets, topics, parameters, queues: one create call each with boto3


def generated_program(directory: Path, count: int) -> Path:
    """A Pulumi program of `count` independent resources (an equal mix of four cheap types)."""
    per_kind = count // GENERATED_KINDS
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "Pulumi.yaml").write_text("name: generated\nruntime: python\n")
    (directory / "__main__.py").write_text(
        "import pulumi_aws as aws\n"
        f"for i in range({per_kind}):\n"
        '    aws.s3.Bucket(f"bucket-{i}", bucket=f"generated-bucket-{i}")\n'
        '    aws.sns.Topic(f"topic-{i}", name=f"generated-topic-{i}")\n'
        '    aws.ssm.Parameter(f"param-{i}", name=f"/generated/param-{i}", type="String", value="v")\n'
        '    aws.sqs.Queue(f"queue-{i}", name=f"generated-queue-{i}")\n'
    )
    return directory


def bare_boto3_creates(clients: Any, count: int, prefix: str) -> None:
    """The same resources made with one boto3 call each: the floor the engine is compared to."""
    for i in range(count // GENERATED_KINDS):
        clients("s3").create_bucket(Bucket=f"{prefix}-bucket-{i}")
        clients("sns").create_topic(Name=f"{prefix}-topic-{i}")
        clients("ssm").put_parameter(Name=f"/{prefix}/param-{i}", Type="String", Value="v")
        clients("sqs").create_queue(QueueName=f"{prefix}-queue-{i}")


def run_generated(endpoint: str, tmp: Path, count: int) -> tuple[float, Measure, Measure]:
    """(seconds of bare boto3 creates, engine up from empty, engine up unchanged)."""
    from rollback.aws.session import Clients
    from rollback.engine import StackConfig
    from rollback.engine.embedded.engine import EmbeddedEngine
    from rollback.store.local import LocalStore

    session, counter = counted_session()
    clients = Clients(session, endpoint_url=endpoint)
    for service in ("s3", "sns", "ssm", "sqs"):
        clients(service)  # client construction is not what is compared
    start = time.perf_counter()
    bare_boto3_creates(clients, count, "baseline")
    baseline = time.perf_counter() - start
    program = generated_program(tmp / "generated", count)
    store = LocalStore(tmp / "generated-store")
    config = StackConfig(values={"aws:region": "us-east-1"})

    def up() -> Measure:
        counter.reset()
        began = time.perf_counter()
        engine = EmbeddedEngine(store, clients, "generated")
        engine.up(program, STACK, config)
        seconds = time.perf_counter() - began
        changes = Counter(change.op for change in engine.last_changes)
        return Measure(seconds, counter.total, dict(counter.mutating), dict(changes))

    return baseline, up(), up()


if __name__ == "__main__":
    sys.exit(main())
