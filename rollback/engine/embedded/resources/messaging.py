"""SNS topics and subscriptions, ACM certificates, Route 53 health checks."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from rollback.aws.session import Clients
from rollback.engine.embedded.resources.declared import declared_json
from rollback.engine.embedded.resources.failures import already_gone, applying, aws_code, present
from rollback.engine.embedded.resources.naming import physical_name
from rollback.engine.embedded.resources.tagging import aws_tags, pulumi_tags, tag_changes, with_tags

if TYPE_CHECKING:
    from rollback.engine.embedded.resources import ResourceType


def _missing(call: Any, codes: tuple[str, ...], **kwargs: Any) -> Any:
    from botocore.exceptions import ClientError

    try:
        return call(**kwargs)
    except ClientError as exc:
        if aws_code(exc) in codes:
            return None
        raise


# Pulumi topic input -> SNS attribute name.
_TOPIC_ATTRIBUTES = {
    "displayName": "DisplayName",
    "policy": "Policy",
    "deliveryPolicy": "DeliveryPolicy",
    "kmsMasterKeyId": "KmsMasterKeyId",
    "contentBasedDeduplication": "ContentBasedDeduplication",
}


@dataclass(frozen=True)
class Topic:
    """aws:sns/topic:Topic; id is the ARN. Attributes and tags change in place."""

    clients: Clients
    token = "aws:sns/topic:Topic"
    replace_on = frozenset({"name", "namePrefix", "fifoTopic", "region"})

    def create(self, name: str, inputs: dict[str, Any]) -> tuple[str, dict[str, Any]]:
        topic = physical_name(inputs, "name", name, 256)
        if inputs.get("fifoTopic") and not topic.endswith(".fifo"):
            topic = f"{topic}.fifo"
        attributes = self._attributes(inputs)
        if inputs.get("fifoTopic"):
            attributes["FifoTopic"] = "true"
        kwargs: dict[str, Any] = {"Name": topic, "Attributes": attributes}
        if inputs.get("tags"):
            kwargs["Tags"] = aws_tags(inputs["tags"])
        with applying(self.token, name, "create"):
            arn = self.clients("sns").create_topic(**kwargs)["TopicArn"]
        # What a read would say, without one: the attributes are the ones just set.
        outputs = {**inputs, "name": topic, "arn": arn, "owner": arn.split(":")[4]}
        return arn, with_tags(
            outputs, {str(k): str(v) for k, v in (inputs.get("tags") or {}).items()}
        )

    def update(self, id: str, olds: dict[str, Any], news: dict[str, Any]) -> dict[str, Any]:
        sns = self.clients("sns")
        with applying(self.token, id, "update"):
            for key, attribute in _TOPIC_ATTRIBUTES.items():
                if news.get(key) != olds.get(key):
                    sns.set_topic_attributes(
                        TopicArn=id, AttributeName=attribute, AttributeValue=_text(news.get(key))
                    )
            to_set, to_remove = tag_changes(olds, news)
            if to_set:
                sns.tag_resource(ResourceArn=id, Tags=aws_tags(to_set))
            if to_remove:
                sns.untag_resource(ResourceArn=id, TagKeys=to_remove)
        return present(self.read(id, {**news, "name": olds.get("name")}), self.token, id)

    def read(self, id: str, inputs: dict[str, Any]) -> dict[str, Any] | None:
        sns = self.clients("sns")
        with applying(self.token, id, "read"):
            answer = _missing(
                sns.get_topic_attributes, ("NotFound", "NotFoundException"), TopicArn=id
            )
            if answer is None:
                return None
            # Tags only when declared: one read per topic on a no-change `up`.
            tags = (
                sns.list_tags_for_resource(ResourceArn=id).get("Tags", [])
                if inputs.get("tags")
                else []
            )
        attributes = answer["Attributes"]
        outputs = {
            **inputs,
            "name": id.split(":")[-1],
            "arn": id,
            "owner": attributes.get("Owner", ""),
        }
        for key, attribute in _TOPIC_ATTRIBUTES.items():
            if key in inputs:
                live = attributes.get(attribute, "")
                if key == "policy":
                    outputs[key] = declared_json(live, inputs.get(key)) if live else ""
                elif isinstance(inputs[key], bool):
                    outputs[key] = live == "true"
                else:
                    outputs[key] = live
        return with_tags(outputs, pulumi_tags(tags))

    def delete(self, id: str, inputs: dict[str, Any]) -> None:
        with applying(self.token, id, "delete"), already_gone("NotFound"):
            self.clients("sns").delete_topic(TopicArn=id)

    @staticmethod
    def _attributes(inputs: dict[str, Any]) -> dict[str, str]:
        return {
            attribute: _text(inputs[key])
            for key, attribute in _TOPIC_ATTRIBUTES.items()
            if inputs.get(key) is not None
        }


def _text(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return "" if value is None else str(value)


@dataclass(frozen=True)
class TopicSubscription:
    """aws:sns/topicSubscription:TopicSubscription; id is the subscription ARN.

    Filter policy, raw delivery and redrive policy change in place.
    """

    clients: Clients
    token = "aws:sns/topicSubscription:TopicSubscription"
    replace_on = frozenset({"topic", "protocol", "endpoint", "region"})

    def create(self, name: str, inputs: dict[str, Any]) -> tuple[str, dict[str, Any]]:
        attributes = {
            attribute: _text(inputs[key])
            for key, attribute in (
                ("filterPolicy", "FilterPolicy"),
                ("rawMessageDelivery", "RawMessageDelivery"),
                ("redrivePolicy", "RedrivePolicy"),
            )
            if inputs.get(key) is not None
        }
        with applying(self.token, name, "create"):
            arn = self.clients("sns").subscribe(
                TopicArn=inputs["topic"],
                Protocol=inputs["protocol"],
                Endpoint=inputs["endpoint"],
                Attributes=attributes,
                ReturnSubscriptionArn=True,
            )["SubscriptionArn"]
        return arn, present(self.read(arn, inputs), self.token, arn)

    def update(self, id: str, olds: dict[str, Any], news: dict[str, Any]) -> dict[str, Any]:
        sns = self.clients("sns")
        with applying(self.token, id, "update"):
            for key, attribute in (
                ("filterPolicy", "FilterPolicy"),
                ("rawMessageDelivery", "RawMessageDelivery"),
                ("redrivePolicy", "RedrivePolicy"),
            ):
                if news.get(key) != olds.get(key):
                    sns.set_subscription_attributes(
                        SubscriptionArn=id,
                        AttributeName=attribute,
                        AttributeValue=_text(news.get(key)),
                    )
        return present(self.read(id, news), self.token, id)

    def read(self, id: str, inputs: dict[str, Any]) -> dict[str, Any] | None:
        with applying(self.token, id, "read"):
            answer = _missing(
                self.clients("sns").get_subscription_attributes,
                ("NotFound", "NotFoundException"),
                SubscriptionArn=id,
            )
        if answer is None:
            return None
        attributes = answer["Attributes"]
        outputs = {
            **inputs,
            "arn": id,
            "topic": attributes.get("TopicArn", inputs.get("topic")),
            "protocol": attributes.get("Protocol", inputs.get("protocol")),
            "endpoint": attributes.get("Endpoint", inputs.get("endpoint")),
            "ownerId": attributes.get("Owner", ""),
        }
        if "rawMessageDelivery" in inputs:
            outputs["rawMessageDelivery"] = attributes.get("RawMessageDelivery") == "true"
        if "filterPolicy" in inputs:
            live = attributes.get("FilterPolicy", "")
            outputs["filterPolicy"] = declared_json(live, inputs["filterPolicy"]) if live else ""
        return outputs

    def delete(self, id: str, inputs: dict[str, Any]) -> None:
        with applying(self.token, id, "delete"), already_gone("NotFound", "InvalidParameter"):
            self.clients("sns").unsubscribe(SubscriptionArn=id)


@dataclass(frozen=True)
class Certificate:
    """aws:acm/certificate:Certificate (requested, DNS or email validation); id is the ARN. Tags change in place."""

    clients: Clients
    token = "aws:acm/certificate:Certificate"
    replace_on = frozenset(
        {"domainName", "subjectAlternativeNames", "validationMethod", "keyAlgorithm", "region"}
    )

    def create(self, name: str, inputs: dict[str, Any]) -> tuple[str, dict[str, Any]]:
        kwargs: dict[str, Any] = {
            "DomainName": inputs["domainName"],
            "ValidationMethod": inputs.get("validationMethod") or "DNS",
        }
        if inputs.get("subjectAlternativeNames"):
            kwargs["SubjectAlternativeNames"] = list(inputs["subjectAlternativeNames"])
        if inputs.get("keyAlgorithm"):
            kwargs["KeyAlgorithm"] = inputs["keyAlgorithm"]
        if inputs.get("tags"):
            kwargs["Tags"] = aws_tags(inputs["tags"])
        with applying(self.token, name, "create"):
            arn = self.clients("acm").request_certificate(**kwargs)["CertificateArn"]
        return arn, present(self.read(arn, inputs), self.token, arn)

    def update(self, id: str, olds: dict[str, Any], news: dict[str, Any]) -> dict[str, Any]:
        acm = self.clients("acm")
        to_set, to_remove = tag_changes(olds, news)
        with applying(self.token, id, "update"):
            if to_set:
                acm.add_tags_to_certificate(CertificateArn=id, Tags=aws_tags(to_set))
            if to_remove:
                acm.remove_tags_from_certificate(
                    CertificateArn=id, Tags=[{"Key": k} for k in to_remove]
                )
        return present(self.read(id, news), self.token, id)

    def read(self, id: str, inputs: dict[str, Any]) -> dict[str, Any] | None:
        acm = self.clients("acm")
        with applying(self.token, id, "read"):
            answer = _missing(
                acm.describe_certificate, ("ResourceNotFoundException",), CertificateArn=id
            )
            if answer is None:
                return None
            tags = acm.list_tags_for_certificate(CertificateArn=id).get("Tags", [])
        certificate = answer["Certificate"]
        options = [
            {
                "domainName": o.get("DomainName", ""),
                "resourceRecordName": o.get("ResourceRecord", {}).get("Name", ""),
                "resourceRecordType": o.get("ResourceRecord", {}).get("Type", ""),
                "resourceRecordValue": o.get("ResourceRecord", {}).get("Value", ""),
            }
            for o in certificate.get("DomainValidationOptions", [])
        ]
        outputs = {
            **inputs,
            "arn": id,
            "domainName": certificate["DomainName"],
            "status": certificate.get("Status", ""),
            "domainValidationOptions": options,
            "validationMethod": inputs.get("validationMethod") or "DNS",
        }
        if "subjectAlternativeNames" in inputs:
            outputs["subjectAlternativeNames"] = [
                n
                for n in certificate.get("SubjectAlternativeNames", [])
                if n != certificate["DomainName"] or n in inputs["subjectAlternativeNames"]
            ]
        return with_tags(outputs, pulumi_tags(tags))

    def delete(self, id: str, inputs: dict[str, Any]) -> None:
        with applying(self.token, id, "delete"), already_gone("ResourceNotFoundException"):
            self.clients("acm").delete_certificate(CertificateArn=id)


# Pulumi health check input -> Route 53 HealthCheckConfig key.
_HEALTH_CHECK = {
    "type": "Type",
    "fqdn": "FullyQualifiedDomainName",
    "ipAddress": "IPAddress",
    "port": "Port",
    "resourcePath": "ResourcePath",
    "searchString": "SearchString",
    "failureThreshold": "FailureThreshold",
    "requestInterval": "RequestInterval",
    "measureLatency": "MeasureLatency",
    "invertHealthcheck": "Inverted",
    "disabled": "Disabled",
    "enableSni": "EnableSNI",
}
_INT_KEYS = {"port", "failureThreshold", "requestInterval"}
_UPDATABLE = {
    "fqdn",
    "ipAddress",
    "port",
    "resourcePath",
    "searchString",
    "failureThreshold",
    "invertHealthcheck",
    "disabled",
    "enableSni",
}


@dataclass(frozen=True)
class HealthCheck:
    """aws:route53/healthCheck:HealthCheck; id is the health check id. Endpoint settings and tags change in place."""

    clients: Clients
    token = "aws:route53/healthCheck:HealthCheck"
    replace_on = frozenset({"type", "requestInterval", "measureLatency", "referenceName"})

    def create(self, name: str, inputs: dict[str, Any]) -> tuple[str, dict[str, Any]]:
        route53 = self.clients("route53")
        config = {
            parameter: int(inputs[key]) if key in _INT_KEYS else inputs[key]
            for key, parameter in _HEALTH_CHECK.items()
            if inputs.get(key) is not None
        }
        with applying(self.token, name, "create"):
            id = route53.create_health_check(
                CallerReference=f"{inputs.get('referenceName') or name}-{uuid.uuid4().hex[:12]}",
                HealthCheckConfig=config,
            )["HealthCheck"]["Id"]
            if inputs.get("tags"):
                route53.change_tags_for_resource(
                    ResourceType="healthcheck", ResourceId=id, AddTags=aws_tags(inputs["tags"])
                )
        return id, present(self.read(id, inputs), self.token, id)

    def update(self, id: str, olds: dict[str, Any], news: dict[str, Any]) -> dict[str, Any]:
        route53 = self.clients("route53")
        changed = {
            _HEALTH_CHECK[key]: int(news[key]) if key in _INT_KEYS else news[key]
            for key in _UPDATABLE
            if news.get(key) != olds.get(key) and news.get(key) is not None
        }
        with applying(self.token, id, "update"):
            if changed:
                route53.update_health_check(HealthCheckId=id, **changed)
            to_set, to_remove = tag_changes(olds, news)
            if to_set or to_remove:
                route53.change_tags_for_resource(
                    ResourceType="healthcheck",
                    ResourceId=id,
                    **({"AddTags": aws_tags(to_set)} if to_set else {}),
                    **({"RemoveTagKeys": to_remove} if to_remove else {}),
                )
        return present(self.read(id, news), self.token, id)

    def read(self, id: str, inputs: dict[str, Any]) -> dict[str, Any] | None:
        route53 = self.clients("route53")
        with applying(self.token, id, "read"):
            answer = _missing(route53.get_health_check, ("NoSuchHealthCheck",), HealthCheckId=id)
            if answer is None:
                return None
            tag_sets = route53.list_tags_for_resource(ResourceType="healthcheck", ResourceId=id)
        config = answer["HealthCheck"]["HealthCheckConfig"]
        outputs: dict[str, Any] = {**inputs, "arn": f"arn:aws:route53:::healthcheck/{id}"}
        for key, parameter in _HEALTH_CHECK.items():
            if parameter in config and (key in inputs or key in ("type",)):
                value = config[parameter]
                outputs[key] = float(value) if key in _INT_KEYS else value
        tags = pulumi_tags(tag_sets.get("ResourceTagSet", {}).get("Tags"))
        return with_tags(outputs, tags)

    def delete(self, id: str, inputs: dict[str, Any]) -> None:
        with applying(self.token, id, "delete"), already_gone("NoSuchHealthCheck"):
            self.clients("route53").delete_health_check(HealthCheckId=id)


def appliers(clients: Clients) -> list[ResourceType]:
    """The SNS, ACM and Route 53 health check appliers."""
    return [Topic(clients), TopicSubscription(clients), Certificate(clients), HealthCheck(clients)]
