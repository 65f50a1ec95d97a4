"""Benchmark: a snapshot plus a restore of a ~1 GiB database through the toolkit, against the
bare PostgreSQL operations it uses.

Run as `python bench/data.py [--size-mib 1024] [--strategy auto|FILE_COPY|WAL_LOG] [--dump]`.
Starts the embedded cloud (moto's server and PostgreSQL on 127.0.0.1, in a
temporary state directory), creates an RDS instance, fills its database with
`--size-mib` of orders (generate_series in SQL, one statement), then times:

- bare: the PostgreSQL operations the toolkit's path performs, in one admin
  session: three `CREATE DATABASE ... TEMPLATE` copies (release snapshot,
  pre-restore snapshot, restored instance), two renames (the swap) and the
  three row counts the restore's proof reads (restored copy and live before
  the swap, live after);
- toolkit: the release snapshot through `Rds.create_snapshot` + wait, then
  `DbSnapshotStep` and `DbRestoreStep` apply + verify with the row proof, over
  HTTP to the embedded cloud (what `rollback to` does).

`--dump` also times `pg_dump -Fc` + `pg_restore` of the same database, the
other way a snapshot could be copied. Bare and toolkit alternate for
`--rounds`; prints each round, the peak RSS of this (the toolkit's) process,
and last `data_restore_ratio: <median toolkit / median bare>` (target <= 1.2;
peak RSS target < 200 MiB).
"""

from __future__ import annotations

import argparse
import logging
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from rollback import cloud, postgres, rdsdata  # noqa: E402
from rollback.aws.rds import Rds  # noqa: E402
from rollback.datarows import InstanceRows  # noqa: E402
from rollback.steps.db_restore import DbRestoreStep  # noqa: E402
from rollback.steps.db_snapshot import DbSnapshotStep  # noqa: E402
from rollback.waiting import Timing  # noqa: E402

DB = "bench-db"
USER = "bench"
PASSWORD = "bench-Passw0rd"  # a throwaway password of a throwaway cluster


def fill(cluster: postgres.Cluster, size_mib: int) -> tuple[int, float]:
    """Write ~size_mib of orders into the instance's database; (bytes, seconds)."""
    import psycopg

    rows = max(1, size_mib * 1024 * 1024 // 150)  # ~150 bytes per row on disk, measured
    started = time.perf_counter()
    with psycopg.connect(
        host="127.0.0.1",
        port=cluster.port,
        user=USER,
        password=PASSWORD,
        dbname=DB,
        autocommit=True,
    ) as conn:
        conn.execute(
            "CREATE TABLE orders (id bigint PRIMARY KEY, customer text, amount_cents int, "
            "note text)"
        )
        conn.execute(
            "INSERT INTO orders SELECT g, 'customer-' || (g % 1000), (g * 7) % 100000, "
            f"md5(g::text) || md5((g + 1)::text) FROM generate_series(1, {rows}) g"
        )
        conn.execute("VACUUM ANALYZE orders")
        size = conn.execute("SELECT pg_database_size(current_database())").fetchone()
    assert size is not None
    return int(size[0]), time.perf_counter() - started


def bare(cluster: postgres.Cluster, strategy: str) -> float:
    """The toolkit's PostgreSQL operations, by hand."""
    started = time.perf_counter()
    with postgres.admin(cluster) as conn:
        for source, target in ((DB, "b-release"), (DB, "b-pre"), ("b-release", "b-restored")):
            conn.execute(f'CREATE DATABASE "{target}" TEMPLATE "{source}" STRATEGY {strategy}')
        for name in ("b-restored", DB):
            with postgres.admin(cluster, name) as db:
                db.execute("SELECT count(*) FROM orders").fetchone()
        conn.execute('ALTER DATABASE "b-restored" RENAME TO "b-swap-1"')
        conn.execute('ALTER DATABASE "b-swap-1" RENAME TO "b-swap-2"')
        with postgres.admin(cluster, "b-swap-2") as db:
            db.execute("SELECT count(*) FROM orders").fetchone()
    elapsed = time.perf_counter() - started
    with postgres.admin(cluster) as conn:
        for name in ("b-release", "b-pre", "b-swap-2"):
            conn.execute(f'DROP DATABASE "{name}"')
    return elapsed


def toolkit(client: Any, cluster: postgres.Cluster, run: str) -> float:
    """Release snapshot, then db-snapshot and db-restore apply + verify, rows proven;
    afterwards (untimed) the aside instance and both snapshots are deleted."""
    timing = Timing()
    rds = Rds(client)
    url = f"postgresql+psycopg://{USER}:{PASSWORD}@127.0.0.1:{cluster.port}/{DB}"
    rows = InstanceRows("ROLLBACK_DATABASE_URL", DB, {"ROLLBACK_DATABASE_URL": url})
    started = time.perf_counter()
    release = f"{DB}-release-{run}"
    rds.create_snapshot(release, DB, {"rollback:release": run})
    rds.wait_snapshot_available(release, 3600)
    snapshot = DbSnapshotStep(rds, DB, run, timing)
    snapshot.apply()
    assert all(e.ok for e in snapshot.verify())
    restore = DbRestoreStep(rds, DB, release, run, True, None, None, timing, rows=rows)
    restore.apply()
    evidence = restore.verify()
    assert all(e.ok for e in evidence), [e.note for e in evidence if not e.ok]
    elapsed = time.perf_counter() - started
    client.delete_db_instance(DBInstanceIdentifier=restore.aside_id, SkipFinalSnapshot=True)
    for snapshot_id in (release, snapshot.snapshot_id):
        client.delete_db_snapshot(DBSnapshotIdentifier=snapshot_id)
    return elapsed


def dump_restore(cluster: postgres.Cluster) -> float:
    bin_dir = Path(cluster.bin_dir)
    with tempfile.TemporaryDirectory() as scratch:
        archive = Path(scratch) / "db.dump"
        args = ["-h", cluster.socket_dir, "-p", str(cluster.port), "-U", postgres.ADMIN_USER]
        started = time.perf_counter()
        subprocess.run(
            [str(bin_dir / "pg_dump"), *args, "-Fc", "-Z0", "-f", str(archive), DB], check=True
        )
        with postgres.admin(cluster) as conn:
            conn.execute('CREATE DATABASE "dump-restored"')
        subprocess.run(
            [str(bin_dir / "pg_restore"), *args, "-d", "dump-restored", "-j", "2", str(archive)],
            check=True,
        )
        elapsed = time.perf_counter() - started
    with postgres.admin(cluster) as conn:
        conn.execute('DROP DATABASE "dump-restored"')
    return elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size-mib", type=int, default=1024, help="database size to generate")
    parser.add_argument("--strategy", default="auto", choices=["auto", "FILE_COPY", "WAL_LOG"])
    parser.add_argument("--dump", action="store_true", help="also time pg_dump + pg_restore")
    parser.add_argument("--rounds", type=int, default=3, help="alternating rounds (median)")
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    if postgres.find_bin_dir() is None:
        sys.exit("bench/data.py needs PostgreSQL's server binaries (apt-get install postgresql).")
    import os

    import boto3

    os.environ.update(cloud.fake_environment(""))  # fake keys; the endpoint is passed below
    os.environ.pop("AWS_ENDPOINT_URL")
    with tempfile.TemporaryDirectory(prefix="bench-data-") as state_dir:
        state = cloud.start(Path(state_dir))
        try:
            cluster = cloud.postgres_cluster(state)
            assert cluster is not None, cloud.no_data_reason()
            client = boto3.client("rds", region_name="us-east-1", endpoint_url=state.url)
            client.create_db_instance(
                DBInstanceIdentifier=DB,
                DBInstanceClass="db.t3.micro",
                Engine="postgres",
                MasterUsername=USER,
                MasterUserPassword=PASSWORD,
                AllocatedStorage=20,
            )
            size, fill_s = fill(cluster, args.size_mib)
            print(f"database: {size / 2**20:.0f} MiB of orders, written in {fill_s:.1f}s")
            strategy = args.strategy
            if strategy == "auto":
                strategy = "FILE_COPY" if size > rdsdata.FILE_COPY_ABOVE_BYTES else "WAL_LOG"
            if args.strategy == "auto":
                # The embedded cloud chooses by size too; show what the other strategy costs.
                other = "WAL_LOG" if strategy == "FILE_COPY" else "FILE_COPY"
                print(f"bare, {other}: {bare(cluster, other):.2f}s")
            # Import-time costs are start-up, not data work: pay them before timing.
            import sqlalchemy  # noqa: F401

            bare(cluster, strategy)  # warm the page cache for both contenders
            bares, toolkits = [], []
            for n in range(1, args.rounds + 1):
                bares.append(bare(cluster, strategy))
                toolkits.append(toolkit(client, cluster, f"r{n}"))
                print(f"round {n}: bare {bares[-1]:.2f}s, toolkit {toolkits[-1]:.2f}s")
            # Copies are disk-bound and this machine's disk is shared: the median of the
            # alternating rounds is the headline, the best of each is shown too.
            bare_s, toolkit_s = statistics.median(bares), statistics.median(toolkits)
            print(
                f"bare, {strategy} (3 copies, 2 renames, 3 row counts): median {bare_s:.2f}s, best {min(bares):.2f}s"
            )
            print(
                "toolkit (release snapshot, db-snapshot, db-restore with row proof): "
                f"median {toolkit_s:.2f}s, best {min(toolkits):.2f}s"
            )
            print(f"best-of ratio: {min(toolkits) / min(bares):.2f}")
            if args.dump:
                print(f"pg_dump -Fc + pg_restore -j2 (one copy): {dump_restore(cluster):.2f}s")
        finally:
            cloud.stop(Path(state_dir))
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux
    print(f"toolkit process peak RSS: {peak:.0f} MiB (target < 200)")
    print(f"data_restore_ratio: {toolkit_s / bare_s:.2f}")


if __name__ == "__main__":
    main()
