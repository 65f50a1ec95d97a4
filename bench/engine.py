"""Benchmark: the embedded engine's `up` of the reference stack, from empty and unchanged.

Run as `python bench/engine.py`. Starts moto's server on a free loopback port,
points AWS_ENDPOINT_URL at it (fake credentials, the dev stack's passphrase),
then in-process brings the reference stack (Pulumi.yaml, stacks/webapp, stack
`dev`) up from an empty cloud, and `up` again without any change. Every AWS
call is counted by a botocore `before-call` handler on the session the
engine's clients use; mutating calls are those not named Describe*, List*,
Get* or Head*. For each `up` it prints the wall time, the total and the
mutating calls, and which operations mutated; then the no-change time as a
ratio of the from-empty time. The last line is
`engine_nochange_mutating_calls: <n>` (target 0). The store is a temporary
directory, removed afterwards.
"""

from __future__ import annotations

import logging
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
    from moto.server import ThreadedMotoServer

    # Noise: moto's request log and pulumi_aws's deprecation warnings.
    logging.getLogger("werkzeug").setLevel(logging.ERROR)
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
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    try:
        host, port = server.get_host_and_port()
        endpoint = f"http://{host}:{port}"
        os.environ["AWS_ENDPOINT_URL"] = endpoint
        with tempfile.TemporaryDirectory(prefix="bench-engine-") as tmp:
            first, again = run(endpoint, Path(tmp))
    finally:
        server.stop()

    report("up from empty", first)
    report("up, no change", again)
    print(f"nochange/from-empty time ratio: {again.seconds / first.seconds:.3f}")
    print(f"engine_nochange_mutating_calls: {again.mutating_calls}")
    return 0


def run(endpoint: str, tmp: Path) -> tuple[Measure, Measure]:
    from rollback.aws.session import Clients, make_session
    from rollback.engine.embedded.engine import EmbeddedEngine
    from rollback.engine.embedded.stack_config import load_stack_config
    from rollback.store.local import LocalStore

    session = make_session("us-east-1")
    counter = CallCounter()
    session.events.register("before-call.*.*", counter)
    clients = Clients(session, endpoint_url=endpoint)
    store = LocalStore(tmp / "store")
    config = load_stack_config(ROOT, STACK, PROJECT)
    first = measure_up(EmbeddedEngine(store, clients, PROJECT), counter, config)
    # A fresh engine, as a second `rollback stack up` would build: state comes from the store.
    again = measure_up(EmbeddedEngine(store, clients, PROJECT), counter, config)
    return first, again


if __name__ == "__main__":
    sys.exit(main())
