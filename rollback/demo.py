"""The demo: a whole bad deploy and its rollback, from nothing, on the embedded cloud.

1. start the embedded cloud and two real HTTP servers on loopback, the blue
   and green colours' health endpoints;
2. make a scratch git repository holding the reference stack (stacks/webapp);
3. release v1.0.0: blue live, recorded with its checkpoint, RDS snapshot and
   artifact, marked stable;
4. deploy v2.0.0 to green (a program change and a new artifact) and cut
   traffic over; green's health endpoint starts failing;
5. `rollback to last-stable`: every step verified against the cloud;
6. stop what it started (unless `keep`).

Where the embedded cloud's databases are real PostgreSQL (`rollback.rdsdata`),
the demo also shows data: v1.0.0 writes V1_ORDERS orders (schema r1) and its
release snapshot holds them; v2.0.0 adds a column (schema r2, no down
migration) and writes V2_ORDERS more; the rollback therefore restores v1's
snapshot (the data-loss window counted in rows), the integrity check proves
v1's orders are back, and the demo reads v2's orders in the pre-restore
snapshot. The database URL reaches the steps only through
ROLLBACK_DATABASE_URL, for the demo's duration.

It goes through the same core functions as the CLI commands. Progress goes to
`on_progress`; the result is data.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from rollback.errors import CheckFailed, ConfigError

if TYPE_CHECKING:
    from rollback.executor import OnEvent
    from rollback.orchestrate import Outcome

SOURCE = Path(__file__).resolve().parents[1]  # a source checkout: Pulumi.yaml, stacks/
STACK = "webapp/dev"
# The reference stack's dev passphrase (Pulumi.dev.yaml says so); demo only.
DEMO_PASSPHRASE = "test-passphrase"

V1_ORDERS = 120
V2_ORDERS = 37
INSPECT_ID = "demo-pre-restore-inspect"  # a scratch instance reading the pre-restore snapshot

# v2.0.0's program change: a bucket for release notes that v1.0.0 does not have.
V2_PROGRAM_CHANGE = """

# v2.0.0: release notes published next to the artifacts.
aws.s3.Bucket(
    "release-notes",
    bucket=f"webapp-{pulumi.get_stack()}-release-notes",
    tags={"Project": pulumi.get_project(), "Stack": pulumi.get_stack(), "ManagedBy": "rollback-webapp"},
)
"""


@dataclass(frozen=True)
class DemoResult:
    workdir: str
    store: str
    endpoint_url: str
    outcome: Outcome
    kept: bool
    data: dict[str, Any] | None = None  # rows read back after the rollback; None: no PostgreSQL

    @property
    def ok(self) -> bool:
        return self.outcome.ok

    def to_dict(self) -> dict[str, Any]:
        return {
            "ok": self.ok,
            "workdir": self.workdir,
            "store": self.store,
            "endpoint_url": self.endpoint_url,
            "kept": self.kept,
            "data": self.data,
            "rollback": self.outcome.to_dict(),
        }


def _config_yaml(
    salt: str, password: str, *, live: str, versions: dict[str, str], health: dict[str, str]
) -> str:
    # The first deploy's weights. After it the toolkit owns traffic (rollback/ownership.py):
    # the program ignores changes to them, and the cutover moves users.
    weights = {"blue": 100, "green": 0}
    lines = [
        f"encryptionsalt: {salt}",
        "config:",
        "  aws:region: us-east-1",
        f"  webapp:liveColor: {live}",
        *[f'  webapp:{c}Version: "{v}"' for c, v in versions.items()],
        *[f'  webapp:{c}Weight: "{w}"' for c, w in weights.items()],
        *[f"  webapp:healthUrl{c.capitalize()}: {u}" for c, u in health.items()],
        "  webapp:dbUsername: webapp",
        "  webapp:dbPassword:",
        f"    secure: {password}",
    ]
    return "\n".join(lines) + "\n"


def _dev_secrets() -> tuple[str, str]:
    """The encryption salt and ciphertext password of the reference Pulumi.dev.yaml."""
    import yaml

    doc = yaml.safe_load((SOURCE / "Pulumi.dev.yaml").read_text())
    return str(doc["encryptionsalt"]), str(doc["config"]["webapp:dbPassword"]["secure"])


@contextmanager
def _environment(values: dict[str, str]) -> Iterator[None]:
    """Set variables for the demo's duration, then put the old ones back."""
    old = {k: os.environ.get(k) for k in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for k, v in old.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


def _database_url(cluster: Any, instance_id: str, salt: str, ciphertext: str) -> str:
    """The master user's URL of `instance_id` on the embedded cloud (password decrypted)."""
    from urllib.parse import quote

    from rollback.engine.embedded.secrets import SecretsKeyring

    password = SecretsKeyring().crypter(salt).decrypt(ciphertext)
    return (
        f"postgresql+psycopg://webapp:{quote(password, safe='')}@127.0.0.1:{cluster.port}/"
        f"{instance_id}"
    )


def _sql(url: str, *statements: str) -> Any:
    """Run statements as the application would; the last one's first value."""
    import psycopg

    value = None
    with psycopg.connect(url.replace("postgresql+psycopg://", "postgresql://")) as conn:
        for statement in statements:
            cursor = conn.execute(statement)
            value = cursor.fetchone()[0] if cursor.description else None  # type: ignore[index]
    return value


def _pre_restore_orders(rds: Any, url: str, instance_id: str, run_id: str) -> tuple[str, int]:
    """Read the pre-restore snapshot through a scratch restore, then delete the scratch."""
    from rollback.steps.db_snapshot import pre_rollback_snapshot_id

    snapshot_id = pre_rollback_snapshot_id(instance_id, run_id)
    rds.restore_db_instance_from_db_snapshot(
        DBInstanceIdentifier=INSPECT_ID, DBSnapshotIdentifier=snapshot_id
    )
    try:
        count = int(_sql(url.rsplit("/", 1)[0] + f"/{INSPECT_ID}", "SELECT count(*) FROM orders"))
    finally:
        rds.delete_db_instance(DBInstanceIdentifier=INSPECT_ID, SkipFinalSnapshot=True)
    return snapshot_id, count


def run_demo(
    keep: bool = False,
    on_progress: Callable[[str], None] = lambda _: None,
    on_event: OnEvent | None = None,
    show_plan: Callable[[Any], None] = lambda _: None,
) -> DemoResult:
    """Run the whole demo; returns the rollback's outcome. Raises ConfigError outside a source checkout."""
    import git

    from rollback import cloud, stacks
    from rollback.aws.cloudwatch import Alarms, Metrics
    from rollback.aws.elbv2 import LoadBalancing
    from rollback.aws.rds import Rds
    from rollback.aws.route53 import Dns
    from rollback.aws.session import Clients, make_session
    from rollback.cutover import Cutover, CutoverSpec
    from rollback.engine.embedded.engine import EmbeddedEngine
    from rollback.healthserver import HealthServer
    from rollback.orchestrate import Workbench, rollback_to
    from rollback.planner import Options
    from rollback.releases import Attachments, Registry
    from rollback.store import open_store
    from rollback.store.lock import current_user
    from rollback.triggers import CloudApis

    if not (SOURCE / "stacks" / "webapp" / "__main__.py").exists():
        raise ConfigError(
            "the demo needs the reference stack of a source checkout (stacks/webapp); run it from the repository."
        )
    work = Path(tempfile.mkdtemp(prefix="rollback-demo-"))
    store_dir = work / "store"
    with ExitStack() as cleanup:
        on_progress(f"starting the embedded cloud (state in {store_dir / '.state'}) ...")
        state = cloud.start(store_dir / ".state")
        if not keep:
            # The store stays (small, in the temp dir): it holds the run's report.
            cleanup.callback(cloud.stop, store_dir / ".state")
            cleanup.callback(shutil.rmtree, work / "iac", True)
        env = {
            **cloud.fake_environment(state.url),
            "PULUMI_CONFIG_PASSPHRASE": os.environ.get("PULUMI_CONFIG_PASSPHRASE", DEMO_PASSPHRASE),
        }
        cleanup.enter_context(_environment(env))
        servers = {c: cleanup.enter_context(HealthServer()) for c in ("blue", "green")}
        for colour, server in servers.items():
            server.body = f"ok {colour}".encode()
        health = {c: s.url for c, s in servers.items()}
        on_progress(
            f"embedded cloud at {state.url}; health endpoints blue {health['blue']}, green {health['green']}"
        )

        clients = Clients(make_session("us-east-1"), endpoint_url=state.url)
        store = open_store(str(store_dir))
        registry = Registry(store, STACK)
        engine = EmbeddedEngine(store=store, clients=clients, project="webapp")
        rds = Rds(clients("rds"))
        bench = Workbench(clients=clients, store=store, registry=registry, engine=lambda: engine)

        repo_dir = work / "iac"
        shutil.copytree(
            SOURCE / "stacks" / "webapp",
            repo_dir / "stacks" / "webapp",
            ignore=shutil.ignore_patterns("__pycache__"),
        )
        shutil.copy(SOURCE / "Pulumi.yaml", repo_dir / "Pulumi.yaml")
        salt, password = _dev_secrets()
        config = repo_dir / "Pulumi.dev.yaml"
        config.write_text(
            _config_yaml(
                salt,
                password,
                live="blue",
                versions={"blue": "1.0.0", "green": "1.0.0"},
                health=health,
            )
        )
        repo = git.Repo.init(repo_dir)
        author = git.Actor("rollback demo", "demo@rollback.invalid")
        # Release tags are annotated: git needs a tagger. The scratch repo has
        # its own, so the demo runs on a machine with no git identity at all.
        with repo.config_writer() as local:
            local.set_value("user", "name", author.name)
            local.set_value("user", "email", author.email)
        repo.index.add(["Pulumi.yaml", "Pulumi.dev.yaml", "stacks"])
        repo.index.commit("feat: webapp 1.0.0 on blue", author=author, committer=author)
        project = stacks.load_project(repo_dir)

        cluster = cloud.postgres_cluster(state)
        data: dict[str, str] = {}  # the database's URL and instance, when it holds real rows
        if cluster is None:
            on_progress(
                f"RDS holds no data here: {cloud.no_data_reason() or 'PostgreSQL did not start.'}"
            )

        def write_orders(version: str, schema: str) -> dict[str, Any]:
            """The application of `version` writes its orders; what its release records."""
            if cluster is None:
                return {}
            if not data:
                [instance_id] = rds.instance_ids()
                url = _database_url(cluster, instance_id, salt, password)
                data.update(url=url, instance_id=instance_id)
                os.environ["ROLLBACK_DATABASE_URL"] = url  # put back by _environment
                bench.environ["ROLLBACK_DATABASE_URL"] = url  # what the steps and preflight read
            if schema == "r1":
                total = _sql(
                    data["url"],
                    "CREATE TABLE orders (id serial PRIMARY KEY, customer text NOT NULL, "
                    "amount_cents integer NOT NULL, written_by text NOT NULL)",
                    "INSERT INTO orders (customer, amount_cents, written_by) SELECT 'customer-' "
                    f"|| (g % 9), 100 * g, '1.0.0' FROM generate_series(1, {V1_ORDERS}) g",
                    "SELECT count(*) FROM orders",
                )
                on_progress(f"v{version} wrote {total} orders into {data['instance_id']}")
                return {
                    "schema_revision": "r1",
                    "integrity_checks": (
                        {
                            "name": "v1's orders are back",
                            "sql": "SELECT count(*) FROM orders",
                            "expect": V1_ORDERS,
                        },
                    ),
                }
            _sql(data["url"], "ALTER TABLE orders ADD COLUMN gift_note text")
            return {"schema_revision": "r2"}

        def release(version: str, artifact: bytes, schema: str) -> None:
            path = work / f"webapp-{version}.tgz"
            path.write_bytes(artifact)
            result = stacks.up(
                engine, project, "dev", hold=bench.owner().holder(f"the demo's deploy of {version}")
            )
            counts = ", ".join(f"{n} {op}" for op, n in sorted(result.counts().items()))
            on_progress(f"stack up for {version}: {result.resources} resources ({counts})")
            recorded = write_orders(version, schema)
            attached = {
                **(stacks.release_state(engine, project, "dev", version, rds) or {}),
                **recorded,
            }
            view = registry.record(version, path, repo_dir, attachments=Attachments(**attached))
            on_progress(
                f"recorded v{version}: {view.release.color} live, snapshot {view.release.db_snapshot_id}, artifact {view.release.artifact.sha256[:12]}"
            )

        # Set by write_orders when the database holds rows; the caller's value comes back after.
        cleanup.enter_context(_environment({"ROLLBACK_DATABASE_URL": ""}))
        release("1.0.0", b"webapp 1.0.0 build\n", "r1")
        registry.mark("1.0.0", "stable", "baked in production for a week")
        on_progress("marked 1.0.0 stable")

        on_progress("deploying 2.0.0 to green and cutting traffic over ...")
        with (repo_dir / "stacks" / "webapp" / "__main__.py").open("a") as main:
            main.write(V2_PROGRAM_CHANGE)
        config.write_text(
            _config_yaml(
                salt,
                password,
                live="green",
                versions={"blue": "1.0.0", "green": "2.0.0"},
                health=health,
            )
        )
        repo.index.add(["Pulumi.dev.yaml", "stacks"])
        repo.index.commit(
            "feat: 2.0.0 on green, with release notes", author=author, committer=author
        )
        release("2.0.0", b"webapp 2.0.0 build\n", "r2")
        cut = Cutover(
            store,
            STACK,
            CloudApis(
                elbv2=LoadBalancing(clients("elbv2")),
                route53=Dns(clients("route53")),
                alarms=Alarms(clients("cloudwatch")),
                metrics=Metrics(clients("cloudwatch")),
            ),
            actor=current_user(),
            owner=bench.owner(),
            outcome=bench.outcome_check,
        ).run(CutoverSpec("green", steps=(100,), pause_s=0, bake_s=0))
        on_progress(f"cutover to green: {cut.result}: {cut.message}")
        if not cut.ok:
            raise CheckFailed(f"the demo's cutover to green did not succeed: {cut.message}")
        if data:
            total = _sql(
                data["url"],
                "INSERT INTO orders (customer, amount_cents, written_by, gift_note) SELECT "
                f"'customer-' || g, 250 * g, '2.0.0', 'thanks' FROM generate_series(1, {V2_ORDERS}) g",
                "SELECT count(*) FROM orders",
            )
            on_progress(f"v2.0.0 wrote {V2_ORDERS} more orders: {total} in {data['instance_id']}")

        servers["green"].status = 500
        on_progress("green's health endpoint now answers 500: rolling back to last-stable")

        def confirm(plan: Any) -> bool:
            show_plan(plan)
            return True

        outcome = rollback_to(
            bench,
            "last-stable",
            Options(
                reason="green's health endpoint answers 500 after the 2.0.0 cutover",
                actor=current_user(),
                accept_data_loss=bool(data),  # the demo's point: v2's orders go, and are kept
            ),
            confirm=confirm,
            confirmation="demo",
            on_event=on_event,
        )
        rows: dict[str, Any] | None = None
        if data and outcome.ok:
            live = _sql(data["url"], "SELECT count(*) FROM orders")
            snapshot_id, kept_rows = _pre_restore_orders(
                clients("rds"), data["url"], data["instance_id"], outcome.plan.run_id
            )
            rows = {
                "instance_id": data["instance_id"],
                "orders_after_rollback": live,
                "pre_restore_snapshot": snapshot_id,
                "orders_in_pre_restore_snapshot": kept_rows,
            }
            on_progress(
                f"{data['instance_id']} holds {live} orders again (v1's); pre-restore snapshot "
                f"{snapshot_id} still holds all {kept_rows}, v2's {V2_ORDERS} among them"
            )
        if keep:
            on_progress(
                f"kept: export AWS_ENDPOINT_URL={state.url} PULUMI_CONFIG_PASSPHRASE={DEMO_PASSPHRASE}; "
                f"rollback --store {store_dir} history; stop with: rollback --store {store_dir} cloud stop"
            )
        return DemoResult(str(work), str(store_dir), state.url, outcome, keep, rows)
    raise AssertionError("unreachable")  # ExitStack does not swallow exceptions
