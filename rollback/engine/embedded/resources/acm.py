"""ACM certificate validation: wait until a requested certificate is issued.

(The certificate itself, aws:acm/certificate:Certificate, is in messaging.py.)
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from rollback.aws.session import Clients
from rollback.engine.embedded.resources.failures import applying, aws_code
from rollback.errors import CheckFailed, EngineError
from rollback.waiting import Timing, poll

if TYPE_CHECKING:
    from rollback.engine.embedded.resources import ResourceType

# The provider's default create timeout (certificate_validation.go: 75 minutes).
ISSUE_TIMEOUT = 75 * 60.0


def go_time(moment: datetime | None) -> str:
    """A time as Go's `time.Time.String()` writes it in UTC; the zero time for None."""
    if moment is None:
        return "0001-01-01 00:00:00 +0000 UTC"
    moment = moment.astimezone(UTC)
    fraction = f"{moment.microsecond:06d}".rstrip("0")
    return (
        moment.strftime("%Y-%m-%d %H:%M:%S") + (f".{fraction}" if fraction else "") + " +0000 UTC"
    )


@dataclass(frozen=True)
class CertificateValidation:
    """aws:acm/certificateValidation:CertificateValidation: no AWS resource, a wait.

    As terraform-provider-aws's internal/service/acm/certificate_validation.go:
    create refuses a certificate that ACM did not issue itself, and with
    `validationRecordFqdns` one that misses a DNS validation record of the
    certificate; then it waits until the certificate is ISSUED (a FAILED,
    REVOKED or otherwise settled one is an error). The id is the certificate's
    IssuedAt, read before the wait, in Go's time format (the zero time when ACM
    gives none, as for a certificate still pending on AWS). Read finds it only
    while the certificate is ISSUED; delete touches nothing. Every input
    change replaces it (ForceNew).
    """

    clients: Clients
    token = "aws:acm/certificateValidation:CertificateValidation"
    replace_on = frozenset({"certificateArn", "validationRecordFqdns", "region"})
    timing: Timing = field(default_factory=Timing)

    def create(self, name: str, inputs: dict[str, Any]) -> tuple[str, dict[str, Any]]:
        arn = str(inputs["certificateArn"])
        with applying(self.token, name, "create"):
            certificate = self.clients("acm").describe_certificate(CertificateArn=arn)[
                "Certificate"
            ]
        self._check_records(name, certificate, inputs.get("validationRecordFqdns"))
        self._wait_issued(name, arn)
        id = go_time(certificate.get("IssuedAt"))
        return id, {**inputs, "certificateArn": arn}

    def update(self, id: str, olds: dict[str, Any], news: dict[str, Any]) -> dict[str, Any]:
        return {**news, "certificateArn": news["certificateArn"]}  # never called: all ForceNew

    def read(self, id: str, inputs: dict[str, Any]) -> dict[str, Any] | None:
        status = self._status(id, str(inputs["certificateArn"]))
        if status != "ISSUED":
            return None
        return {**inputs, "certificateArn": inputs["certificateArn"]}

    def delete(self, id: str, inputs: dict[str, Any]) -> None:
        return None

    def _check_records(self, name: str, certificate: dict[str, Any], fqdns: Any) -> None:
        if certificate.get("Type") != "AMAZON_ISSUED":
            raise EngineError(
                f"ACM Certificate ({certificate['CertificateArn']}) has type "
                f"{certificate.get('Type')}, no validation necessary.",
                resource=name,
                type=self.token,
            )
        if not fqdns:
            return
        missing: dict[str, str] = {}
        for option in certificate.get("DomainValidationOptions", []):
            method = option.get("ValidationMethod", "DNS")
            if method != "DNS":
                raise EngineError(
                    f"{self.token} {name!r}: validation_record_fqdns is not valid for {method} "
                    "validation.",
                    resource=name,
                    type=self.token,
                )
            record = str(option.get("ResourceRecord", {}).get("Name", "")).rstrip(".")
            if record:
                missing[record] = str(option.get("DomainName", ""))
        for fqdn in fqdns:
            missing.pop(str(fqdn).rstrip("."), None)
        if missing:
            raise EngineError(
                f"{self.token} {name!r}: "
                + "; ".join(f"missing {d} DNS validation record: {r}" for r, d in missing.items())
                + ". Nothing was waited for.",
                resource=name,
                type=self.token,
            )

    def _wait_issued(self, name: str, arn: str) -> None:
        seen: list[str] = []

        def issued() -> bool | None:
            status = self._status(name, arn)
            seen.append(status)
            if status == "ISSUED":
                return True
            if status != "PENDING_VALIDATION":
                raise EngineError(
                    f"{self.token} {name!r}: ACM Certificate ({arn}) is {status or 'gone'}, "
                    "not issued.",
                    resource=name,
                    type=self.token,
                )
            return None

        try:
            poll(
                f"ACM Certificate ({arn}) to be issued",
                issued,
                timeout=ISSUE_TIMEOUT,
                timing=self.timing,
                observe=lambda: f"status {seen[-1]}" if seen else "",
            )
        except CheckFailed as exc:
            raise EngineError(
                f"Could not create {self.token} {name!r}: {exc.message}",
                resource=name,
                type=self.token,
            ) from exc

    def _status(self, name: str, arn: str) -> str:
        """The certificate's status ("" when it does not exist)."""
        from botocore.exceptions import ClientError

        with applying(self.token, name, "read"):
            try:
                found = self.clients("acm").describe_certificate(CertificateArn=arn)
            except ClientError as exc:
                if aws_code(exc) == "ResourceNotFoundException":
                    return ""
                raise
        return str(found["Certificate"].get("Status", ""))


def appliers(clients: Clients) -> list[ResourceType]:
    """The ACM validation applier."""
    return [CertificateValidation(clients)]
