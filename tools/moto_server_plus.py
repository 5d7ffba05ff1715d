"""moto_server, plus the two API Gateway v2 operations the operator sends that moto 5.2.5 lacks.

moto answers UpdateStage with a 500 (no handler) and DeleteAccessLogSettings with a 404 (no
route), so without these a room whose access logs or throttling change in place could not be
run against it at all. Both are written from AWS's API reference, nothing more:

- UpdateStage, PATCH /v2/apis/{apiId}/stages/{stageName}: each field the request carries
  replaces the stage's; 200 with the stage.
  https://docs.aws.amazon.com/apigatewayv2/latest/api-reference/apis-apiid-stages-stagename.html
- DeleteAccessLogSettings, DELETE /v2/apis/{apiId}/stages/{stageName}/accesslogsettings: the
  stage no longer logs; 204 with no body; 404 for an unknown API or stage.
  https://docs.aws.amazon.com/apigatewayv2/latest/api-reference/apis-apiid-stages-stagename-accesslogsettings.html

Run exactly as moto_server: `python tools/moto_server_plus.py -H 127.0.0.1 -p PORT`.
"""

import json
from datetime import datetime
from urllib.parse import unquote

import moto
from moto.apigatewayv2 import urls
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


ApiGatewayV2Response.update_stage = update_stage
ApiGatewayV2Response.delete_access_log_settings = delete_access_log_settings
urls.url_paths[
    "{0}/v2/apis/(?P<api_id>[^/]+)/stages/(?P<stage_name>[^/]+)/accesslogsettings$"
] = ApiGatewayV2Response.dispatch

if __name__ == "__main__":
    main()
