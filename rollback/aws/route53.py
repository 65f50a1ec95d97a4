"""Route53: read a name's record sets, submit one change batch, read a change's status."""

from __future__ import annotations

from typing import Any

from rollback.aws.failures import translated

_NOT_FOUND = ("NoSuchHostedZone", "NoSuchChange")


def record_name(name: str) -> str:
    """The form Route53 lists names in: lower case, with the trailing dot."""
    name = name.strip().lower()
    return name if name.endswith(".") else name + "."


class Dns:
    """Typed access to the Route53 calls the DNS step makes."""

    def __init__(self, client: Any) -> None:
        self.client = client

    def record_sets(self, zone_id: str, name: str, record_type: str) -> list[dict[str, Any]]:
        """Every record set (all set identifiers) of `name` and `record_type` in the zone.

        Pages through list_resource_record_sets from the name on and stops at
        the first record of another name or type.
        """
        wanted = record_name(name)
        found: list[dict[str, Any]] = []
        kwargs: dict[str, Any] = {
            "HostedZoneId": zone_id,
            "StartRecordName": wanted,
            "StartRecordType": record_type,
        }
        while True:
            with translated(
                f"listing records {wanted} {record_type} in zone {zone_id}", not_found=_NOT_FOUND
            ):
                page = self.client.list_resource_record_sets(**kwargs)
            for rrset in page["ResourceRecordSets"]:
                if record_name(rrset["Name"]) != wanted or rrset["Type"] != record_type:
                    return found
                found.append(rrset)
            if not page.get("IsTruncated"):
                return found
            kwargs["StartRecordName"] = page["NextRecordName"]
            kwargs["StartRecordType"] = page["NextRecordType"]
            if page.get("NextRecordIdentifier"):
                kwargs["StartRecordIdentifier"] = page["NextRecordIdentifier"]

    def upsert(self, zone_id: str, record_sets: list[dict[str, Any]], comment: str) -> str:
        """UPSERT the record sets in one change batch (all or nothing); returns the change id."""
        batch = {
            "Comment": comment[:256],
            "Changes": [{"Action": "UPSERT", "ResourceRecordSet": r} for r in record_sets],
        }
        with translated(f"changing records in zone {zone_id}", not_found=_NOT_FOUND):
            info = self.client.change_resource_record_sets(HostedZoneId=zone_id, ChangeBatch=batch)
        return str(info["ChangeInfo"]["Id"])

    def change_status(self, change_id: str) -> str:
        """PENDING or INSYNC."""
        with translated(f"reading change {change_id}", not_found=_NOT_FOUND):
            return str(self.client.get_change(Id=change_id)["ChangeInfo"]["Status"])
