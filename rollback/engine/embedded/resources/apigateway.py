"""API Gateway: REST APIs (from an OpenAPI body), deployments and stages; HTTP APIs
(API Gateway v2) with integrations, routes and stages."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from rollback.aws.session import Clients
from rollback.engine.embedded.resources.failures import already_gone, applying, aws_code, present
from rollback.engine.embedded.resources.naming import physical_name

if TYPE_CHECKING:
    from rollback.engine.embedded.resources import ResourceType

_GONE = ("NotFoundException",)


def _missing(call: Any, **kwargs: Any) -> Any:
    from botocore.exceptions import ClientError

    try:
        return call(**kwargs)
    except ClientError as exc:
        if aws_code(exc) in _GONE:
            return None
        raise


def _account(clients: Clients) -> str:
    return clients.account()


def _region(clients: Clients) -> str:
    return str(clients("apigateway").meta.region_name or "us-east-1")


def _put_body(client: Any, id: str, body: str) -> None:
    """Import the OpenAPI/Swagger body, overwriting the API.

    AWS takes Swagger 2.0 and OpenAPI 3; moto takes only OpenAPI 3. When the
    cloud refuses a Swagger 2.0 document for that reason, the same paths are
    sent again as OpenAPI 3.0.1 (the `x-amazon-apigateway-*` extensions are
    the same in both).
    """
    import json

    from botocore.exceptions import ClientError

    try:
        client.put_rest_api(restApiId=id, mode="overwrite", body=body.encode())
    except ClientError as exc:
        document = json.loads(body) if body.lstrip().startswith("{") else None
        if not (document and document.get("swagger") and "OpenAPI 3" in str(exc)):
            raise
        document.pop("swagger")
        converted = {"openapi": "3.0.1", **document}
        client.put_rest_api(restApiId=id, mode="overwrite", body=json.dumps(converted).encode())


@dataclass(frozen=True)
class RestApi:
    """aws:apigateway/restApi:RestApi; id is the API id. Name, description and body change in place."""

    clients: Clients
    token = "aws:apigateway/restApi:RestApi"
    replace_on = frozenset({"region"})

    def create(self, name: str, inputs: dict[str, Any]) -> tuple[str, dict[str, Any]]:
        api_name = physical_name(inputs, "name", name, 255)
        kwargs: dict[str, Any] = {"name": api_name}
        if inputs.get("description"):
            kwargs["description"] = inputs["description"]
        client = self.clients("apigateway")
        with applying(self.token, name, "create"):
            id = client.create_rest_api(**kwargs)["id"]
            if inputs.get("body"):
                _put_body(client, id, str(inputs["body"]))
        return id, present(self.read(id, {**inputs, "name": api_name}), self.token, id)

    def update(self, id: str, olds: dict[str, Any], news: dict[str, Any]) -> dict[str, Any]:
        client = self.clients("apigateway")
        with applying(self.token, id, "update"):
            if news.get("body") and news.get("body") != olds.get("body"):
                _put_body(client, id, str(news["body"]))
            operations = [
                {"op": "replace", "path": f"/{key}", "value": str(news.get(key) or "")}
                for key in ("name", "description")
                if key in news and news.get(key) != olds.get(key)
            ]
            if operations:
                client.update_rest_api(restApiId=id, patchOperations=operations)
        return present(
            self.read(id, {**news, "name": news.get("name") or olds.get("name")}), self.token, id
        )

    def read(self, id: str, inputs: dict[str, Any]) -> dict[str, Any] | None:
        client = self.clients("apigateway")
        with applying(self.token, id, "read"):
            api = _missing(client.get_rest_api, restApiId=id)
            if api is None:
                return None
            resources = client.get_resources(restApiId=id).get("items", [])
        region = _region(self.clients)
        root = next((r["id"] for r in resources if r.get("path") == "/"), "")
        outputs = {
            **inputs,
            "name": api["name"],
            "arn": f"arn:aws:apigateway:{region}::/restapis/{id}",
            "rootResourceId": root,
            "createdDate": str(api.get("createdDate", "")),
            "executionArn": f"arn:aws:execute-api:{region}:{_account(self.clients)}:{id}",
        }
        if "description" in inputs:
            outputs["description"] = api.get("description", "")
        return outputs

    def delete(self, id: str, inputs: dict[str, Any]) -> None:
        with applying(self.token, id, "delete"), already_gone(*_GONE):
            self.clients("apigateway").delete_rest_api(restApiId=id)


@dataclass(frozen=True)
class Deployment:
    """aws:apigateway/deployment:Deployment; id is the deployment id. The description changes in place."""

    clients: Clients
    token = "aws:apigateway/deployment:Deployment"
    replace_on = frozenset(
        {"restApi", "stageName", "stageDescription", "triggers", "variables", "region"}
    )

    def create(self, name: str, inputs: dict[str, Any]) -> tuple[str, dict[str, Any]]:
        kwargs: dict[str, Any] = {"restApiId": inputs["restApi"]}
        for key in ("description", "stageName", "stageDescription"):
            if inputs.get(key):
                kwargs[key] = inputs[key]
        if inputs.get("variables"):
            kwargs["variables"] = {str(k): str(v) for k, v in inputs["variables"].items()}
        with applying(self.token, name, "create"):
            id = self.clients("apigateway").create_deployment(**kwargs)["id"]
        return id, present(self.read(id, inputs), self.token, id)

    def update(self, id: str, olds: dict[str, Any], news: dict[str, Any]) -> dict[str, Any]:
        if news.get("description") != olds.get("description"):
            with applying(self.token, id, "update"):
                self.clients("apigateway").update_deployment(
                    restApiId=news["restApi"],
                    deploymentId=id,
                    patchOperations=[
                        {
                            "op": "replace",
                            "path": "/description",
                            "value": str(news.get("description") or ""),
                        }
                    ],
                )
        return present(self.read(id, news), self.token, id)

    def read(self, id: str, inputs: dict[str, Any]) -> dict[str, Any] | None:
        with applying(self.token, id, "read"):
            deployment = _missing(
                self.clients("apigateway").get_deployment,
                restApiId=inputs["restApi"],
                deploymentId=id,
            )
        if deployment is None:
            return None
        outputs = {**inputs, "createdDate": str(deployment.get("createdDate", ""))}
        if "description" in inputs:
            outputs["description"] = deployment.get("description", "")
        return outputs

    def delete(self, id: str, inputs: dict[str, Any]) -> None:
        with applying(self.token, id, "delete"), already_gone(*_GONE):
            self.clients("apigateway").delete_deployment(
                restApiId=inputs["restApi"], deploymentId=id
            )


@dataclass(frozen=True)
class Stage:
    """aws:apigateway/stage:Stage; id is `ags-<api>-<stage>`. Deployment, description and variables change in place."""

    clients: Clients
    token = "aws:apigateway/stage:Stage"
    replace_on = frozenset({"restApi", "stageName", "region"})

    def create(self, name: str, inputs: dict[str, Any]) -> tuple[str, dict[str, Any]]:
        kwargs: dict[str, Any] = {
            "restApiId": inputs["restApi"],
            "stageName": inputs["stageName"],
            "deploymentId": inputs["deployment"],
        }
        if inputs.get("description"):
            kwargs["description"] = inputs["description"]
        if inputs.get("variables"):
            kwargs["variables"] = {str(k): str(v) for k, v in inputs["variables"].items()}
        with applying(self.token, name, "create"):
            self.clients("apigateway").create_stage(**kwargs)
        id = f"ags-{inputs['restApi']}-{inputs['stageName']}"
        return id, present(self.read(id, inputs), self.token, id)

    def update(self, id: str, olds: dict[str, Any], news: dict[str, Any]) -> dict[str, Any]:
        operations = []
        if news.get("deployment") != olds.get("deployment"):
            operations.append(
                {"op": "replace", "path": "/deploymentId", "value": news["deployment"]}
            )
        if news.get("description") != olds.get("description"):
            operations.append(
                {
                    "op": "replace",
                    "path": "/description",
                    "value": str(news.get("description") or ""),
                }
            )
        if operations:
            with applying(self.token, id, "update"):
                self.clients("apigateway").update_stage(
                    restApiId=news["restApi"],
                    stageName=news["stageName"],
                    patchOperations=operations,
                )
        return present(self.read(id, news), self.token, id)

    def read(self, id: str, inputs: dict[str, Any]) -> dict[str, Any] | None:
        with applying(self.token, id, "read"):
            stage = _missing(
                self.clients("apigateway").get_stage,
                restApiId=inputs["restApi"],
                stageName=inputs["stageName"],
            )
        if stage is None:
            return None
        region, api, name = _region(self.clients), inputs["restApi"], inputs["stageName"]
        outputs = {
            **inputs,
            "deployment": stage.get("deploymentId", ""),
            "arn": f"arn:aws:apigateway:{region}::/restapis/{api}/stages/{name}",
            "invokeUrl": f"https://{api}.execute-api.{region}.amazonaws.com/{name}",
            "executionArn": f"arn:aws:execute-api:{region}:{_account(self.clients)}:{api}/{name}",
        }
        if "description" in inputs:
            outputs["description"] = stage.get("description", "")
        return outputs

    def delete(self, id: str, inputs: dict[str, Any]) -> None:
        with applying(self.token, id, "delete"), already_gone(*_GONE):
            self.clients("apigateway").delete_stage(
                restApiId=inputs["restApi"], stageName=inputs["stageName"]
            )


@dataclass(frozen=True)
class HttpApi:
    """aws:apigatewayv2/api:Api; id is the API id. Name, description and tags change in place."""

    clients: Clients
    token = "aws:apigatewayv2/api:Api"
    replace_on = frozenset({"protocolType", "region"})

    def create(self, name: str, inputs: dict[str, Any]) -> tuple[str, dict[str, Any]]:
        api_name = physical_name(inputs, "name", name, 128)
        kwargs: dict[str, Any] = {"Name": api_name, "ProtocolType": inputs["protocolType"]}
        for key, parameter in (
            ("description", "Description"),
            ("routeKey", "RouteKey"),
            ("target", "Target"),
            ("routeSelectionExpression", "RouteSelectionExpression"),
        ):
            if inputs.get(key):
                kwargs[parameter] = inputs[key]
        if inputs.get("tags"):
            kwargs["Tags"] = {str(k): str(v) for k, v in inputs["tags"].items()}
        with applying(self.token, name, "create"):
            id = self.clients("apigatewayv2").create_api(**kwargs)["ApiId"]
        return id, present(self.read(id, {**inputs, "name": api_name}), self.token, id)

    def update(self, id: str, olds: dict[str, Any], news: dict[str, Any]) -> dict[str, Any]:
        changed = {
            parameter: news.get(key) or ""
            for key, parameter in (("name", "Name"), ("description", "Description"))
            if key in news and news.get(key) != olds.get(key)
        }
        if changed:
            with applying(self.token, id, "update"):
                self.clients("apigatewayv2").update_api(ApiId=id, **changed)
        return present(
            self.read(id, {**news, "name": news.get("name") or olds.get("name")}), self.token, id
        )

    def read(self, id: str, inputs: dict[str, Any]) -> dict[str, Any] | None:
        with applying(self.token, id, "read"):
            api = _missing(self.clients("apigatewayv2").get_api, ApiId=id)
        if api is None:
            return None
        region = _region(self.clients)
        outputs = {
            **inputs,
            "name": api["Name"],
            "protocolType": api["ProtocolType"],
            "apiEndpoint": api.get(
                "ApiEndpoint", f"https://{id}.execute-api.{region}.amazonaws.com"
            ),
            "arn": f"arn:aws:apigateway:{region}::/apis/{id}",
            "executionArn": f"arn:aws:execute-api:{region}:{_account(self.clients)}:{id}",
        }
        if "description" in inputs:
            outputs["description"] = api.get("Description", "")
        return outputs

    def delete(self, id: str, inputs: dict[str, Any]) -> None:
        with applying(self.token, id, "delete"), already_gone(*_GONE):
            self.clients("apigatewayv2").delete_api(ApiId=id)


# Pulumi integration input -> API Gateway v2 parameter.
_INTEGRATION = (
    ("integrationType", "IntegrationType"),
    ("integrationUri", "IntegrationUri"),
    ("integrationMethod", "IntegrationMethod"),
    ("connectionType", "ConnectionType"),
    ("description", "Description"),
    ("passthroughBehavior", "PassthroughBehavior"),
    ("payloadFormatVersion", "PayloadFormatVersion"),
    # AWS service integrations (aws-py-apigatewayv2-eventbridge: EventBridge-PutEvents).
    ("integrationSubtype", "IntegrationSubtype"),
    ("credentialsArn", "CredentialsArn"),
    ("requestParameters", "RequestParameters"),
    ("requestTemplates", "RequestTemplates"),
    ("templateSelectionExpression", "TemplateSelectionExpression"),
    ("contentHandlingStrategy", "ContentHandlingStrategy"),
    ("timeoutMilliseconds", "TimeoutInMillis"),
)


@dataclass(frozen=True)
class HttpIntegration:
    """aws:apigatewayv2/integration:Integration; id is the integration id. Settings change in place."""

    clients: Clients
    token = "aws:apigatewayv2/integration:Integration"
    replace_on = frozenset({"apiId", "integrationType", "region"})

    def create(self, name: str, inputs: dict[str, Any]) -> tuple[str, dict[str, Any]]:
        kwargs = {"ApiId": inputs["apiId"], **self._settings(inputs)}
        with applying(self.token, name, "create"):
            id = self.clients("apigatewayv2").create_integration(**kwargs)["IntegrationId"]
        return id, present(self.read(id, inputs), self.token, id)

    def update(self, id: str, olds: dict[str, Any], news: dict[str, Any]) -> dict[str, Any]:
        settings = self._settings(news)
        settings.pop("IntegrationType", None)
        with applying(self.token, id, "update"):
            self.clients("apigatewayv2").update_integration(
                ApiId=news["apiId"], IntegrationId=id, **settings
            )
        return present(self.read(id, news), self.token, id)

    def read(self, id: str, inputs: dict[str, Any]) -> dict[str, Any] | None:
        with applying(self.token, id, "read"):
            integration = _missing(
                self.clients("apigatewayv2").get_integration,
                ApiId=inputs["apiId"],
                IntegrationId=id,
            )
        if integration is None:
            return None
        outputs = dict(inputs)
        for key, parameter in _INTEGRATION:
            if key in inputs and parameter in integration:
                outputs[key] = integration[parameter]
        return outputs

    def delete(self, id: str, inputs: dict[str, Any]) -> None:
        with applying(self.token, id, "delete"), already_gone(*_GONE):
            self.clients("apigatewayv2").delete_integration(ApiId=inputs["apiId"], IntegrationId=id)

    @staticmethod
    def _settings(inputs: dict[str, Any]) -> dict[str, Any]:
        settings = {parameter: inputs[key] for key, parameter in _INTEGRATION if inputs.get(key)}
        if "TimeoutInMillis" in settings:  # numbers arrive as floats
            settings["TimeoutInMillis"] = int(settings["TimeoutInMillis"])
        return settings


@dataclass(frozen=True)
class HttpRoute:
    """aws:apigatewayv2/route:Route; id is the route id. Route key, target and authorization change in place."""

    clients: Clients
    token = "aws:apigatewayv2/route:Route"
    replace_on = frozenset({"apiId", "region"})

    def create(self, name: str, inputs: dict[str, Any]) -> tuple[str, dict[str, Any]]:
        with applying(self.token, name, "create"):
            id = self.clients("apigatewayv2").create_route(
                ApiId=inputs["apiId"], **self._settings(inputs)
            )["RouteId"]
        return id, present(self.read(id, inputs), self.token, id)

    def update(self, id: str, olds: dict[str, Any], news: dict[str, Any]) -> dict[str, Any]:
        with applying(self.token, id, "update"):
            self.clients("apigatewayv2").update_route(
                ApiId=news["apiId"], RouteId=id, **self._settings(news)
            )
        return present(self.read(id, news), self.token, id)

    def read(self, id: str, inputs: dict[str, Any]) -> dict[str, Any] | None:
        with applying(self.token, id, "read"):
            route = _missing(
                self.clients("apigatewayv2").get_route, ApiId=inputs["apiId"], RouteId=id
            )
        if route is None:
            return None
        outputs = {**inputs, "routeKey": route["RouteKey"]}
        if "target" in inputs:
            outputs["target"] = route.get("Target", "")
        return outputs

    def delete(self, id: str, inputs: dict[str, Any]) -> None:
        with applying(self.token, id, "delete"), already_gone(*_GONE):
            self.clients("apigatewayv2").delete_route(ApiId=inputs["apiId"], RouteId=id)

    @staticmethod
    def _settings(inputs: dict[str, Any]) -> dict[str, Any]:
        settings: dict[str, Any] = {"RouteKey": inputs["routeKey"]}
        if inputs.get("target"):
            settings["Target"] = inputs["target"]
        if inputs.get("authorizationType"):
            settings["AuthorizationType"] = inputs["authorizationType"]
        return settings


@dataclass(frozen=True)
class HttpStage:
    """aws:apigatewayv2/stage:Stage; id is the stage name. Auto deploy, description and route settings change in place."""

    clients: Clients
    token = "aws:apigatewayv2/stage:Stage"
    replace_on = frozenset({"apiId", "name", "region"})

    def create(self, name: str, inputs: dict[str, Any]) -> tuple[str, dict[str, Any]]:
        stage = str(inputs.get("name") or physical_name({}, "name", name, 128))
        with applying(self.token, name, "create"):
            self.clients("apigatewayv2").create_stage(
                ApiId=inputs["apiId"], StageName=stage, **self._settings(inputs)
            )
        return stage, present(self.read(stage, {**inputs, "name": stage}), self.token, stage)

    def update(self, id: str, olds: dict[str, Any], news: dict[str, Any]) -> dict[str, Any]:
        with applying(self.token, id, "update"):
            self.clients("apigatewayv2").update_stage(
                ApiId=news["apiId"], StageName=id, **self._settings(news)
            )
        return present(self.read(id, {**news, "name": id}), self.token, id)

    def read(self, id: str, inputs: dict[str, Any]) -> dict[str, Any] | None:
        with applying(self.token, id, "read"):
            stage = _missing(
                self.clients("apigatewayv2").get_stage, ApiId=inputs["apiId"], StageName=id
            )
        if stage is None:
            return None
        region, api = _region(self.clients), inputs["apiId"]
        suffix = "" if id == "$default" else id
        outputs = {
            **inputs,
            "name": id,
            "invokeUrl": f"https://{api}.execute-api.{region}.amazonaws.com/{suffix}",
            "executionArn": f"arn:aws:execute-api:{region}:{_account(self.clients)}:{api}/{id}",
            "arn": f"arn:aws:apigateway:{region}::/apis/{api}/stages/{id}",
        }
        if "autoDeploy" in inputs:
            outputs["autoDeploy"] = bool(stage.get("AutoDeploy", False))
        return outputs

    def delete(self, id: str, inputs: dict[str, Any]) -> None:
        with applying(self.token, id, "delete"), already_gone(*_GONE):
            self.clients("apigatewayv2").delete_stage(ApiId=inputs["apiId"], StageName=id)

    @staticmethod
    def _settings(inputs: dict[str, Any]) -> dict[str, Any]:
        settings: dict[str, Any] = {}
        if inputs.get("autoDeploy") is not None:
            settings["AutoDeploy"] = bool(inputs["autoDeploy"])
        if inputs.get("description"):
            settings["Description"] = inputs["description"]
        route_settings = {}
        for setting in inputs.get("routeSettings") or []:
            entry: dict[str, Any] = {}
            if setting.get("throttlingBurstLimit") is not None:
                entry["ThrottlingBurstLimit"] = int(setting["throttlingBurstLimit"])
            if setting.get("throttlingRateLimit") is not None:
                entry["ThrottlingRateLimit"] = float(setting["throttlingRateLimit"])
            route_settings[str(setting["routeKey"])] = entry
        if route_settings:
            settings["RouteSettings"] = route_settings
        return settings


def appliers(clients: Clients) -> list[ResourceType]:
    """The API Gateway appliers (REST and HTTP APIs)."""
    return [
        RestApi(clients),
        Deployment(clients),
        Stage(clients),
        HttpApi(clients),
        HttpIntegration(clients),
        HttpRoute(clients),
        HttpStage(clients),
    ]
