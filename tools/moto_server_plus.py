"""moto_server, plus the API Gateway v2 operations the operator sends that moto 5.2.5 lacks, and
the authorizer behaviour AWS has and moto does not.

moto answers UpdateStage with a 500 (no handler) and DeleteAccessLogSettings with a 404 (no
route), so without these a room whose access logs or throttling change in place could not be
run against it at all. Both are written from AWS's API reference, nothing more:

- UpdateStage, PATCH /v2/apis/{apiId}/stages/{stageName}: each field the request carries
  replaces the stage's; 200 with the stage.
  https://docs.aws.amazon.com/apigatewayv2/latest/api-reference/apis-apiid-stages-stagename.html
- DeleteAccessLogSettings, DELETE /v2/apis/{apiId}/stages/{stageName}/accesslogsettings: the
  stage no longer logs; 204 with no body; 404 for an unknown API or stage.
  https://docs.aws.amazon.com/apigatewayv2/latest/api-reference/apis-apiid-stages-stagename-accesslogsettings.html

- GetAuthorizers, GET /v2/apis/{apiId}/authorizers: the API's authorizers as `items`.
  https://docs.aws.amazon.com/apigatewayv2/latest/api-reference/apis-apiid-authorizers.html

What AWS answers and moto does not (docs/aws-conformance.md cites each):

- CreateAuthorizer with a name the API already has: 400 BadRequestException "Authorizer name
  must be unique. Authorizer {name} already exists in this RestApi." (aws/aws-cdk#13711 and
  #20170, against API Gateway v2). moto makes a second one.
- UpdateRoute with authorizationType NONE detaches the route's authorizer (aws/aws-cdk#14424,
  aws-cloudformation/cloudformation-coverage-roadmap#2184). moto keeps the authorizer id.
- DeleteAuthorizer of an authorizer a route still names: 409 ConflictException "Cannot delete
  authorizer '{name}', is referenced in route: {routeKey}" (anomalyco/sst#5586). moto deletes
  it and leaves the route naming nothing that exists.

And one moto bug: its DeleteDomainName deletes the domain's API mappings while iterating over
them, so it answers 500 ("dictionary changed size during iteration") whenever the domain still
has one, and only a retry succeeds. Fixed here by iterating over a copy.

Run exactly as moto_server: `python tools/moto_server_plus.py -H 127.0.0.1 -p PORT`.
"""

import json
from datetime import datetime
from urllib.parse import unquote

import moto
from moto.apigatewayv2 import urls
from moto.apigatewayv2.exceptions import APIGatewayV2Error, BadRequestException
from moto.apigatewayv2.models import ApiGatewayV2Backend
from moto.apigatewayv2.responses import ApiGatewayV2Response
from moto.server import main

# The operations are patched onto moto's internals; another version may have moved them.
assert moto.__version__ == "5.2.5", f"written against moto 5.2.5, found {moto.__version__}"

# UpdateStage's fields, in the request's names, and the Stage attribute each one sets.
STAGE_FIELDS = {
    "accessLogSettings": "access_log_settings",
    "autoDeploy": "auto_deploy",
    "clientCertificateId": "client_certificate_id",
    "defaultRouteSettings": "default_route_settings",
    "deploymentId": "deployment_id",
    "description": "description",
    "routeSettings": "route_settings",
    "stageVariables": "stage_variables",
}


def _stage(response):
    # /v2/apis/{apiId}/stages/{stageName}[/accesslogsettings]
    path = response.path.split("/")
    return response.apigatewayv2_backend.get_stage(path[3], unquote(path[5]))


def update_stage(self):
    stage = _stage(self)
    for field, value in json.loads(self.body or "{}").items():
        if field in STAGE_FIELDS:
            setattr(stage, STAGE_FIELDS[field], value)
    stage.updated = datetime.now()
    return 200, {}, json.dumps(stage.to_json())


def delete_access_log_settings(self):
    stage = _stage(self)
    stage.access_log_settings = None
    stage.updated = datetime.now()
    # moto takes the status from the headers, not from the tuple.
    return 204, {"status": 204}, ""


class ConflictException(APIGatewayV2Error):
    code = 409

    def __init__(self, message):
        super().__init__("ConflictException", message)


def _api(response, id_segment):
    # /v2/apis/{apiId}/...
    return response.apigatewayv2_backend.get_api(response.path.split("/")[id_segment])


def get_authorizers(self):
    api = _api(self, 3)
    items = [authorizer.to_json() for authorizer in api.authorizers.values()]
    return 200, {}, json.dumps({"items": items})


_create_authorizer = ApiGatewayV2Response.create_authorizer


def create_authorizer(self):
    api = _api(self, 3)
    name = json.loads(self.body or "{}").get("name")
    if any(authorizer.name == name for authorizer in api.authorizers.values()):
        raise BadRequestException(
            f"Authorizer name must be unique. Authorizer {name} already exists in this RestApi."
        )
    return _create_authorizer(self)


_delete_authorizer = ApiGatewayV2Response.delete_authorizer


def delete_authorizer(self):
    api = _api(self, 3)
    authorizer_id = unquote(self.path.split("/")[5])
    authorizer = api.authorizers.get(authorizer_id)
    for route in api.routes.values():
        if authorizer is not None and route.authorizer_id == authorizer_id:
            raise ConflictException(
                f"Cannot delete authorizer '{authorizer.name}', is referenced in route: {route.route_key}"
            )
    return _delete_authorizer(self)


_update_route = ApiGatewayV2Response.update_route


def update_route(self):
    answer = _update_route(self)
    if json.loads(self.body or "{}").get("authorizationType") == "NONE":
        route = _api(self, 3).routes[unquote(self.path.split("/")[5])]
        route.authorizer_id = None
        return 200, {}, json.dumps(route.to_json())
    return answer


def delete_domain_name(self, domain_name):
    if domain_name not in self.domain_names:
        # moto's own error for it, raised by its original.
        return _delete_domain_name(self, domain_name)
    for mapping_id, mapping in list(self.api_mappings.items()):
        if mapping.domain_name == domain_name:
            del self.api_mappings[mapping_id]
    del self.domain_names[domain_name]


_delete_domain_name = ApiGatewayV2Backend.delete_domain_name
ApiGatewayV2Backend.delete_domain_name = delete_domain_name
ApiGatewayV2Response.get_authorizers = get_authorizers
ApiGatewayV2Response.create_authorizer = create_authorizer
ApiGatewayV2Response.delete_authorizer = delete_authorizer
ApiGatewayV2Response.update_route = update_route
ApiGatewayV2Response.update_stage = update_stage
ApiGatewayV2Response.delete_access_log_settings = delete_access_log_settings
urls.url_paths[
    "{0}/v2/apis/(?P<api_id>[^/]+)/stages/(?P<stage_name>[^/]+)/accesslogsettings$"
] = ApiGatewayV2Response.dispatch

if __name__ == "__main__":
    main()
