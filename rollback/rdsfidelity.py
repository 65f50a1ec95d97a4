"""Where moto's RDS differs from AWS in what a restore-and-rename of an Aurora cluster relies on.

The embedded cloud (`rollback.cloudserver`, and the test suite's moto server)
installs these corrections to moto 5.x's RDS models; each keeps moto's own
validation and errors, and changes only what AWS does differently:

- A cluster endpoint is `<cluster id>.cluster-<id>.<region>.rds.amazonaws.com`
  where `<id>` belongs to the account and region, not to the cluster (Aurora
  user guide, "Amazon Aurora endpoint connections": every cluster of an
  account and region shares it). moto draws it per cluster, so a restored
  cluster renamed to the original identifier would answer at another address;
  here it is derived from the account and region.
- ModifyDBCluster with NewDBClusterIdentifier renames the cluster with its DB
  instances in it. moto keeps the old identifier on the instances, so the
  renamed cluster reads as having none and its instances as belonging to a
  cluster that no longer exists; here they follow the cluster.

Without PostgreSQL the embedded cloud still needs these (the data hook,
`rollback.rdsdata`, is installed separately).
"""

from __future__ import annotations

import functools
import hashlib
from typing import Any

_installed = False


def account_region_id(account_id: str, region: str) -> str:
    """The 12-character part of every cluster endpoint of one account and region."""
    return hashlib.sha256(f"{account_id}:{region}".encode()).hexdigest()[:12]


def install() -> None:
    """Patch moto's RDS models once per process (idempotent)."""
    global _installed
    if _installed:
        return
    from moto.rds.models import DBCluster, DBInstanceClustered, RDSBackend

    created = DBCluster.__init__

    @functools.wraps(created)
    def init(self: Any, *args: Any, **kwargs: Any) -> None:
        created(self, *args, **kwargs)
        self.url_identifier = account_region_id(self.account_id, self.region)

    modify = RDSBackend.modify_db_cluster

    @functools.wraps(modify)
    def modify_db_cluster(self: Any, kwargs: dict[str, Any]) -> Any:
        old = str(kwargs.get("db_cluster_identifier") or "").lower()
        new = str(kwargs.get("new_db_cluster_identifier") or "").lower()
        result = modify(self, kwargs)
        if old and new and old != new:
            for instance in self.databases.values():
                if (
                    isinstance(instance, DBInstanceClustered)
                    and instance.db_cluster_identifier == old
                ):
                    instance.db_cluster_identifier = new
        return result

    DBCluster.__init__ = init  # type: ignore[method-assign]
    RDSBackend.modify_db_cluster = modify_db_cluster  # type: ignore[method-assign]
    _installed = True
