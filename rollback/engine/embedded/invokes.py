"""Invokes (data sources) of pulumi-aws answered from the cloud the engine applies to.

A program's `aws.ec2.get_ami(...)`, `aws.get_availability_zones()`,
`aws.ec2.get_vpc(default=True)` and so on reach the monitor as Invoke
requests: a token and camelCase arguments. `Invokes` answers the tokens in
`SUPPORTED_FUNCTIONS` with boto3 reads only (or, for IAM policy documents,
with no call at all), in the shape the provider returns (camelCase result
keys, as `pulumi_aws`'s `Get*Result` classes read them). A lookup that finds
nothing raises EngineError with the provider's sentence, so the program stops
as it would under Pulumi. Any other token stays refused by the monitor.

The rules follow the Terraform AWS provider's data sources that pulumi-aws
wraps (internal/service/ec2/ec2_ami_data_source.go, vpc_data_source.go,
vpc_subnets_data_source.go, iam/policy_document_data_source.go).
"""

from __future__ import annotations

import json
import re
import zlib
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from rollback.errors import EngineError

if TYPE_CHECKING:
    from rollback.aws.session import Clients

Answer = dict[str, Any]

SUPPORTED_FUNCTIONS: frozenset[str] = frozenset(
    {
        "aws:index/getAvailabilityZones:getAvailabilityZones",
        "aws:index/getCallerIdentity:getCallerIdentity",
        "aws:index/getRegion:getRegion",
        "aws:index/getPartition:getPartition",
        "aws:ec2/getAmi:getAmi",
        "aws:ec2/getVpc:getVpc",
        "aws:ec2/getSubnets:getSubnets",
        "aws:ec2/getSubnet:getSubnet",
        "aws:ec2/getSecurityGroup:getSecurityGroup",
        "aws:iam/getPolicyDocument:getPolicyDocument",
        "aws:route53/getZone:getZone",
    }
)


def _filters(args: dict[str, Any]) -> list[dict[str, Any]]:
    """Pulumi `filters` ([{name, values}]) plus `tags` as EC2 Filters."""
    filters = [
        {"Name": str(f["name"]), "Values": [str(v) for v in f.get("values") or []]}
        for f in args.get("filters") or []
    ]
    filters += [
        {"Name": f"tag:{k}", "Values": [str(v)]} for k, v in (args.get("tags") or {}).items()
    ]
    return filters


def _tags(aws: list[dict[str, Any]] | None) -> dict[str, str]:
    return {str(t["Key"]): str(t.get("Value", "")) for t in aws or ()}


def _only(found: list[dict[str, Any]], what: str) -> dict[str, Any]:
    """The single match, or the provider's error when there are none or several."""
    if not found:
        raise EngineError(
            f"no matching {what} found; check the program's lookup arguments.", function=what
        )
    if len(found) > 1:
        raise EngineError(
            f"multiple {what}s matched; use additional constraints to reduce matches to a single {what}.",
            function=what,
        )
    return found[0]


class Invokes:
    """Answers the supported pulumi-aws functions with reads of the cloud behind `clients`."""

    def __init__(self, clients: Clients) -> None:
        self.clients = clients
        self.refused: set[str] = set()
        self._functions: dict[str, Callable[[dict[str, Any]], Answer]] = {
            "aws:index/getAvailabilityZones:getAvailabilityZones": self.availability_zones,
            "aws:index/getCallerIdentity:getCallerIdentity": self.caller_identity,
            "aws:index/getRegion:getRegion": self.region,
            "aws:index/getPartition:getPartition": self.partition,
            "aws:ec2/getAmi:getAmi": self.ami,
            "aws:ec2/getVpc:getVpc": self.vpc,
            "aws:ec2/getSubnets:getSubnets": self.subnets,
            "aws:ec2/getSubnet:getSubnet": self.subnet,
            "aws:ec2/getSecurityGroup:getSecurityGroup": self.security_group,
            "aws:iam/getPolicyDocument:getPolicyDocument": policy_document,
            "aws:route53/getZone:getZone": self.zone,
        }

    def supports(self, token: str) -> bool:
        return token in self._functions

    def unanswered(self, token: str) -> Answer:
        """Record a function this module does not answer (a preview goes on with an empty result)."""
        self.refused.add(token)
        return {}

    def __call__(self, token: str, args: dict[str, Any]) -> Answer:
        """The function's result; EngineError when AWS refuses or nothing matches."""
        from rollback.engine.embedded.resources.failures import applying

        with applying(token, token.rsplit(":", 1)[-1], "call"):
            return self._functions[token](args)

    # -- account and region ---------------------------------------------------

    def _region_name(self, args: dict[str, Any]) -> str:
        return str(args.get("region") or self.clients("ec2").meta.region_name or "us-east-1")

    def region(self, args: dict[str, Any]) -> Answer:
        wanted = str(args.get("region") or args.get("name") or self._region_name(args))
        regions = self.clients("ec2").describe_regions(AllRegions=True, RegionNames=[wanted])[
            "Regions"
        ]
        region = _only(regions, "region")
        return {
            "id": wanted,
            "name": wanted,
            "region": wanted,
            "endpoint": region.get("Endpoint", f"ec2.{wanted}.amazonaws.com"),
            "description": region.get("RegionName", wanted),
        }

    def partition(self, args: dict[str, Any]) -> Answer:
        from rollback.engine.embedded.resources.naming import partition_of

        name = partition_of(self._region_name(args))
        suffix = "amazonaws.com.cn" if name == "aws-cn" else "amazonaws.com"
        reverse = ".".join(reversed(suffix.split(".")))
        return {"id": name, "partition": name, "dnsSuffix": suffix, "reverseDnsPrefix": reverse}

    def caller_identity(self, args: dict[str, Any]) -> Answer:
        identity = self.clients("sts").get_caller_identity()
        return {
            "id": identity["Account"],
            "accountId": identity["Account"],
            "arn": identity["Arn"],
            "userId": identity["UserId"],
        }

    def availability_zones(self, args: dict[str, Any]) -> Answer:
        filters = _filters(args)
        if args.get("state"):
            filters.append({"Name": "state", "Values": [str(args["state"])]})
        zones = self.clients("ec2").describe_availability_zones(
            Filters=filters, AllAvailabilityZones=bool(args.get("allAvailabilityZones"))
        )["AvailabilityZones"]
        excluded_names = set(args.get("excludeNames") or ())
        excluded_ids = set(args.get("excludeZoneIds") or ())
        zones = sorted(
            (
                z
                for z in zones
                if z["ZoneName"] not in excluded_names and z["ZoneId"] not in excluded_ids
            ),
            key=lambda z: z["ZoneName"],
        )
        return {
            **args,
            "id": self._region_name(args),
            "region": self._region_name(args),
            "names": [z["ZoneName"] for z in zones],
            "zoneIds": [z["ZoneId"] for z in zones],
            "groupNames": sorted({z.get("GroupName", z["RegionName"]) for z in zones}),
        }

    # -- EC2 -------------------------------------------------------------------

    def ami(self, args: dict[str, Any]) -> Answer:
        """describe_images by owners, filters and nameRegex; the newest when mostRecent."""
        kwargs: dict[str, Any] = {"Filters": _filters(args)}
        if args.get("owners"):
            kwargs["Owners"] = [str(o) for o in args["owners"]]
        if args.get("executableUsers"):
            kwargs["ExecutableUsers"] = [str(u) for u in args["executableUsers"]]
        images = self.clients("ec2").describe_images(**kwargs)["Images"]
        if args.get("nameRegex"):
            pattern = re.compile(str(args["nameRegex"]))
            images = [i for i in images if pattern.search(i.get("Name", ""))]
        if len(images) > 1 and _truthy(args.get("mostRecent")):
            images = [max(images, key=lambda i: i.get("CreationDate", ""))]
        if len(images) > 1:
            raise EngineError(
                "your query returned more than one result; use a more specific search criteria "
                "or set mostRecent to true.",
                function="aws:ec2/getAmi:getAmi",
            )
        image = _only(images, "EC2 AMI")
        region = self._region_name(args)
        return {
            **args,
            "mostRecent": _truthy(args.get("mostRecent")),
            "id": image["ImageId"],
            "imageId": image["ImageId"],
            "arn": f"arn:aws:ec2:{region}::image/{image['ImageId']}",
            "name": image.get("Name", ""),
            "description": image.get("Description", ""),
            "architecture": image.get("Architecture", ""),
            "creationDate": image.get("CreationDate", ""),
            "ownerId": image.get("OwnerId", ""),
            "imageOwnerAlias": image.get("ImageOwnerAlias", ""),
            "imageLocation": image.get("ImageLocation", ""),
            "imageType": image.get("ImageType", ""),
            "platform": image.get("Platform", ""),
            "platformDetails": image.get("PlatformDetails", ""),
            "public": bool(image.get("Public", False)),
            "rootDeviceName": image.get("RootDeviceName", ""),
            "rootDeviceType": image.get("RootDeviceType", ""),
            "state": image.get("State", ""),
            "hypervisor": image.get("Hypervisor", ""),
            "virtualizationType": image.get("VirtualizationType", ""),
            "enaSupport": bool(image.get("EnaSupport", False)),
            "sriovNetSupport": image.get("SriovNetSupport", ""),
            "tags": _tags(image.get("Tags")),
            "blockDeviceMappings": [],
            "productCodes": [],
        }

    def vpc(self, args: dict[str, Any]) -> Answer:
        filters = _filters(args)
        for key, name in (
            ("cidrBlock", "cidr"),
            ("dhcpOptionsId", "dhcp-options-id"),
            ("state", "state"),
        ):
            if args.get(key):
                filters.append({"Name": name, "Values": [str(args[key])]})
        if args.get("default") is not None:
            filters.append({"Name": "is-default", "Values": [str(bool(args["default"])).lower()]})
        kwargs: dict[str, Any] = {"Filters": filters}
        if args.get("id"):
            kwargs["VpcIds"] = [str(args["id"])]
        ec2 = self.clients("ec2")
        vpc = _only(ec2.describe_vpcs(**kwargs)["Vpcs"], "EC2 VPC")
        id = vpc["VpcId"]
        main = ec2.describe_route_tables(
            Filters=[
                {"Name": "vpc-id", "Values": [id]},
                {"Name": "association.main", "Values": ["true"]},
            ]
        )["RouteTables"]
        dns = {
            key: ec2.describe_vpc_attribute(VpcId=id, Attribute=key)[key[0].upper() + key[1:]][
                "Value"
            ]
            for key in ("enableDnsSupport", "enableDnsHostnames")
        }
        region = self._region_name(args)
        return {
            **args,
            **dns,
            "id": id,
            "arn": f"arn:aws:ec2:{region}:{vpc['OwnerId']}:vpc/{id}",
            "cidrBlock": vpc["CidrBlock"],
            "cidrBlockAssociations": [
                {
                    "associationId": a.get("AssociationId", ""),
                    "cidrBlock": a.get("CidrBlock", ""),
                    "state": a.get("CidrBlockState", {}).get("State", ""),
                }
                for a in vpc.get("CidrBlockAssociationSet", [])
            ],
            "default": bool(vpc.get("IsDefault", False)),
            "dhcpOptionsId": vpc.get("DhcpOptionsId", ""),
            "instanceTenancy": vpc.get("InstanceTenancy", "default"),
            "mainRouteTableId": main[0]["RouteTableId"] if main else "",
            "ownerId": vpc["OwnerId"],
            "state": vpc.get("State", ""),
            "tags": _tags(vpc.get("Tags")),
            "region": region,
            "enableNetworkAddressUsageMetrics": False,
            "ipv6AssociationId": "",
            "ipv6CidrBlock": "",
        }

    def subnets(self, args: dict[str, Any]) -> Answer:
        subnets = []
        paginator = self.clients("ec2").get_paginator("describe_subnets")
        for page in paginator.paginate(Filters=_filters(args)):
            subnets += page["Subnets"]
        return {
            **args,
            "id": self._region_name(args),
            "region": self._region_name(args),
            "ids": [s["SubnetId"] for s in subnets],
        }

    def subnet(self, args: dict[str, Any]) -> Answer:
        filters = _filters(args)
        for key, name in (
            ("availabilityZone", "availability-zone"),
            ("availabilityZoneId", "availability-zone-id"),
            ("cidrBlock", "cidr-block"),
            ("state", "state"),
            ("vpcId", "vpc-id"),
        ):
            if args.get(key):
                filters.append({"Name": name, "Values": [str(args[key])]})
        if args.get("defaultForAz") is not None:
            filters.append(
                {"Name": "default-for-az", "Values": [str(bool(args["defaultForAz"])).lower()]}
            )
        kwargs: dict[str, Any] = {"Filters": filters}
        if args.get("id"):
            kwargs["SubnetIds"] = [str(args["id"])]
        subnet = _only(self.clients("ec2").describe_subnets(**kwargs)["Subnets"], "EC2 Subnet")
        return {
            **args,
            "id": subnet["SubnetId"],
            "arn": subnet.get("SubnetArn", ""),
            "vpcId": subnet["VpcId"],
            "cidrBlock": subnet["CidrBlock"],
            "availabilityZone": subnet["AvailabilityZone"],
            "availabilityZoneId": subnet.get("AvailabilityZoneId", ""),
            "availableIpAddressCount": subnet.get("AvailableIpAddressCount", 0),
            "defaultForAz": bool(subnet.get("DefaultForAz", False)),
            "mapPublicIpOnLaunch": bool(subnet.get("MapPublicIpOnLaunch", False)),
            "ownerId": subnet.get("OwnerId", ""),
            "state": subnet.get("State", ""),
            "tags": _tags(subnet.get("Tags")),
            "region": self._region_name(args),
        }

    def security_group(self, args: dict[str, Any]) -> Answer:
        filters = _filters(args)
        if args.get("name"):
            filters.append({"Name": "group-name", "Values": [str(args["name"])]})
        if args.get("vpcId"):
            filters.append({"Name": "vpc-id", "Values": [str(args["vpcId"])]})
        kwargs: dict[str, Any] = {"Filters": filters}
        if args.get("id"):
            kwargs["GroupIds"] = [str(args["id"])]
        group = _only(
            self.clients("ec2").describe_security_groups(**kwargs)["SecurityGroups"],
            "EC2 Security Group",
        )
        region = self._region_name(args)
        return {
            **args,
            "id": group["GroupId"],
            "arn": f"arn:aws:ec2:{region}:{group['OwnerId']}:security-group/{group['GroupId']}",
            "name": group["GroupName"],
            "description": group.get("Description", ""),
            "vpcId": group.get("VpcId", ""),
            "tags": _tags(group.get("Tags")),
            "region": region,
        }

    # -- Route 53 --------------------------------------------------------------

    def zone(self, args: dict[str, Any]) -> Answer:
        route53 = self.clients("route53")
        if args.get("zoneId"):
            zones = [route53.get_hosted_zone(Id=str(args["zoneId"]))["HostedZone"]]
        else:
            wanted = str(args.get("name") or "").rstrip(".") + "."
            private = bool(args.get("privateZone"))
            zones = [
                z
                for page in route53.get_paginator("list_hosted_zones").paginate()
                for z in page["HostedZones"]
                if z["Name"] == wanted and z.get("Config", {}).get("PrivateZone", False) == private
            ]
        zone = _only(zones, "Route 53 Hosted Zone")
        id = zone["Id"].split("/")[-1]
        name_servers = (
            route53.get_hosted_zone(Id=id).get("DelegationSet", {}).get("NameServers", [])
        )
        return {
            **args,
            "id": id,
            "zoneId": id,
            "arn": f"arn:aws:route53:::hostedzone/{id}",
            "name": zone["Name"].rstrip("."),
            "callerReference": zone.get("CallerReference", ""),
            "comment": zone.get("Config", {}).get("Comment", ""),
            "privateZone": bool(zone.get("Config", {}).get("PrivateZone", False)),
            "resourceRecordSetCount": zone.get("ResourceRecordSetCount", 0),
            "nameServers": name_servers,
            "primaryNameServer": name_servers[0] if name_servers else "",
            "tags": {},
        }


def _truthy(value: Any) -> bool:
    """Programs pass booleans as strings too (`most_recent="true"`)."""
    if isinstance(value, str):
        return value.lower() == "true"
    return bool(value)


# -- IAM policy documents (computed, no AWS call) ------------------------------


def _string_or_list(values: list[Any] | None) -> Any:
    """One value as a string, several reverse-sorted, as the provider writes them."""
    items = [str(v) for v in values or ()]
    if len(items) == 1:
        return items[0]
    return sorted(items, reverse=True)


def _principals(principals: list[dict[str, Any]]) -> Any:
    by_type: dict[str, list[Any]] = {}
    for principal in principals:
        by_type.setdefault(str(principal["type"]), []).extend(principal.get("identifiers") or [])
    if set(by_type) == {"*"}:
        return "*"
    return {kind: _string_or_list(ids) for kind, ids in by_type.items()}


def _statement(declared: dict[str, Any]) -> dict[str, Any]:
    statement: dict[str, Any] = {}
    if declared.get("sid"):
        statement["Sid"] = str(declared["sid"])
    statement["Effect"] = str(declared.get("effect") or "Allow")
    for key, field in (
        ("actions", "Action"),
        ("notActions", "NotAction"),
        ("resources", "Resource"),
        ("notResources", "NotResource"),
    ):
        if declared.get(key):
            statement[field] = _string_or_list(declared[key])
    if declared.get("principals"):
        statement["Principal"] = _principals(declared["principals"])
    if declared.get("notPrincipals"):
        statement["NotPrincipal"] = _principals(declared["notPrincipals"])
    if declared.get("conditions"):
        conditions: dict[str, dict[str, Any]] = {}
        for condition in declared["conditions"]:
            variables = conditions.setdefault(str(condition["test"]), {})
            variables[str(condition["variable"])] = _string_or_list(condition.get("values"))
        statement["Condition"] = conditions
    return statement


def _merge_by_sid(
    base: list[dict[str, Any]], overriding: list[dict[str, Any]]
) -> list[dict[str, Any]]:
    """Statements of `overriding` replace those of `base` with the same Sid; others are added."""
    merged = list(base)
    for statement in overriding:
        sid = statement.get("Sid")
        index = next((i for i, s in enumerate(merged) if sid and s.get("Sid") == sid), None)
        if index is None:
            merged.append(statement)
        else:
            merged[index] = statement
    return merged


def _documents(texts: Any) -> list[dict[str, Any]]:
    documents = []
    for text in [texts] if isinstance(texts, str) else texts or []:
        try:
            document = json.loads(text)
        except (TypeError, ValueError) as exc:
            raise EngineError(
                f"a source or override policy document is not JSON: {exc}.",
                function="aws:iam/getPolicyDocument:getPolicyDocument",
            ) from exc
        statements = document.get("Statement", [])
        documents.append(
            {**document, "Statement": statements if isinstance(statements, list) else [statements]}
        )
    return documents


def policy_document(args: dict[str, Any]) -> Answer:
    """The JSON of an IAM policy from statements; source documents first, overrides last (by Sid)."""
    statements: list[dict[str, Any]] = []
    for source in _documents(args.get("sourcePolicyDocuments")) + _documents(
        args.get("sourceJson")
    ):
        statements = _merge_by_sid(statements, source["Statement"])
    statements = _merge_by_sid(statements, [_statement(s) for s in args.get("statements") or []])
    for override in _documents(args.get("overridePolicyDocuments")) + _documents(
        args.get("overrideJson")
    ):
        statements = _merge_by_sid(statements, override["Statement"])
    document: dict[str, Any] = {"Version": str(args.get("version") or "2012-10-17")}
    if args.get("policyId"):
        document["Id"] = str(args["policyId"])
    document["Statement"] = statements
    text = json.dumps(document, indent=2)
    return {
        **args,
        "id": str(zlib.crc32(text.encode("utf-8"))),  # the provider's StringHashcode
        "json": text,
        "minifiedJson": json.dumps(document, separators=(",", ":")),
        "version": document["Version"],
    }
