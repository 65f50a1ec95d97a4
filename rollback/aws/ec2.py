"""EC2: the tags of instances, which say what version of the application each one runs."""

from __future__ import annotations

from typing import Any

from rollback.aws.failures import translated

_NOT_FOUND = {"InvalidInstanceID.NotFound", "InvalidInstanceID.Malformed"}


class Instances:
    """Typed access to the EC2 reads the outcome check makes."""

    def __init__(self, client: Any) -> None:
        self.client = client

    def tags(self, instance_ids: list[str]) -> dict[str, dict[str, str]]:
        """Instance id -> its tags, for the ids that exist (one paginated call)."""
        if not instance_ids:
            return {}
        found: dict[str, dict[str, str]] = {}
        with translated(f"reading instances {', '.join(instance_ids)}", not_found=_NOT_FOUND):
            pages = self.client.get_paginator("describe_instances").paginate(
                InstanceIds=instance_ids
            )
            for page in pages:
                for reservation in page.get("Reservations", []):
                    for instance in reservation.get("Instances", []):
                        found[instance["InstanceId"]] = {
                            t["Key"]: t["Value"] for t in instance.get("Tags", [])
                        }
        return found
