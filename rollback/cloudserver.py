"""`python -m rollback.cloudserver`: moto's server, with RDS as AWS behaves and, where
PostgreSQL is installed, backed by real PostgreSQL.

`rollback.cloud.start` runs this: AWS-managed IAM policies are loaded, the
corrections of `rollback.rdsfidelity` and the Glue actions of `rollback.gluefidelity`
installed; when it started a PostgreSQL cluster, the cluster's
record (port, socket and data directories; no secret) arrives in
ROLLBACK_CLOUD_POSTGRES and the hook of `rollback.rdsdata` is installed too.
Then moto's own command line takes over.
"""

from __future__ import annotations

import json
import os
import sys

POSTGRES_ENV = "ROLLBACK_CLOUD_POSTGRES"


def main(argv: list[str] | None = None) -> None:
    from moto.core.config import default_user_config

    from rollback import gluefidelity, rdsfidelity

    # AWS-managed IAM policies exist in every account (stacks attach e.g.
    # AmazonECSTaskExecutionRolePolicy); moto loads them only when asked (~2 s per reset).
    default_user_config["iam"]["load_aws_managed_policies"] = True
    rdsfidelity.install()
    gluefidelity.install()
    record = os.environ.get(POSTGRES_ENV)
    if record:
        from rollback import rdsdata
        from rollback.postgres import Cluster

        rdsdata.install(rdsdata.DatabaseBacking(Cluster.from_record(json.loads(record))))
    from moto.server import main as moto_main

    moto_main(sys.argv[1:] if argv is None else argv)


if __name__ == "__main__":
    main()
