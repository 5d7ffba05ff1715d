// What IAM authorises for one HTTP request to AWS: the documented action of its operation, the
// ARN it touches, the condition keys the request carries, the keys of the resource as it is
// now (its tags and permissions boundary, read from moto), and the further actions AWS
// requires for it (tags on create, a role passed to Lambda). Whether each is allowed is for the
// simulator to say; this module only says what is asked.

export const ACCOUNT = '123456789012'
const API_GATEWAY_SERVICE = 'ops.apigateway.amazonaws.com'
const API_GATEWAY_SLR = 'AWSServiceRoleForAPIGateway'

// One request as the gate received it.
//   { method, path (without the query), query (URLSearchParams), headers, body (Buffer),
//     service (SigV4 scope), region }
// `resourceKeys(kind, id)` answers the resource's current { tags, boundary } from moto.
export async function authorizationsFor(request, resourceKeys) {
  switch (request.service) {
    case 'dynamodb':
      return dynamodb(request, resourceKeys)
    case 'iam':
      return iam(request, resourceKeys)
    case 'lambda':
      return lambda(request, resourceKeys)
    case 'logs':
      return logs(request, resourceKeys)
    case 'apigateway':
      return apigateway(request, resourceKeys)
    case 'execute-api':
      return connections(request)
    case 'sts':
      // "No permissions are required to perform this operation."
      // https://docs.aws.amazon.com/STS/latest/APIReference/API_GetCallerIdentity.html
      if (form(request).get('Action') === 'GetCallerIdentity') {
        return { operation: 'GetCallerIdentity', authorizations: [] }
      }
      return unmapped(request, form(request).get('Action'))
    default:
      return unmapped(request, `${request.method} ${request.path}`)
  }
}

function unmapped(request, what) {
  return {
    operation: String(what),
    unmapped: `the IAM gate cannot map ${request.service} ${what} to IAM; teach tools/iam-gate/authorizations.mjs its documented action`,
    authorizations: [],
  }
}

function json(request) {
  try {
    return JSON.parse(request.body.toString('utf8') || '{}')
  } catch {
    return {}
  }
}

function form(request) {
  return new URLSearchParams(request.body.toString('utf8'))
}

function target(request) {
  const value = request.headers['x-amz-target'] ?? ''
  return value.split('.').pop()
}

// aws:RequestTag/{key} for every tag a request sets, and aws:TagKeys.
function requestTagContext(tags) {
  const context = {}
  for (const [key, value] of Object.entries(tags)) context[`aws:RequestTag/${key}`] = value
  if (Object.keys(tags).length > 0) context['aws:TagKeys'] = Object.keys(tags)
  return context
}

function resourceTagContext(tags, prefixes = ['aws:ResourceTag']) {
  const context = {}
  for (const [key, value] of Object.entries(tags ?? {})) {
    for (const prefix of prefixes) context[`${prefix}/${key}`] = value
  }
  return context
}

function authorize(action, resource, context = {}, extra = {}) {
  return { action, resource, context, ...extra }
}

// `{service}:{operation}` on a resource that carries tags (a DynamoDB table, a Lambda function,
// a log group): the request's tags, and, unless the operation creates it, the tags the resource
// has now. Creating one with tags is also `{service}:TagResource`, as each service documents:
// https://docs.aws.amazon.com/amazondynamodb/latest/developerguide/Tagging.Operations.html,
// https://docs.aws.amazon.com/lambda/latest/dg/attribute-based-access-control.html ("To add
// tags when you create a function, you need lambda:TagResource"),
// https://docs.aws.amazon.com/AmazonCloudWatchLogs/latest/APIReference/API_CreateLogGroup.html
// ("you must have both logs:CreateLogGroup and logs:TagResource").
async function onTaggedResource(request, resourceKeys, { service, operation, creates, resource, requestTags, extraContext = {} }) {
  const context = { ...requestTagContext(requestTags), ...extraContext }
  if (operation !== creates) {
    Object.assign(context, resourceTagContext((await resourceKeys(service, resource, request.region)).tags))
  }
  const found = [authorize(`${service}:${operation}`, resource, context)]
  if (operation === creates && Object.keys(requestTags).length > 0) {
    found.push(authorize(`${service}:TagResource`, resource, context))
  }
  return { context, found }
}

async function dynamodb(request, resourceKeys) {
  const operation = target(request)
  const body = json(request)
  const resource =
    body.ResourceArn ?? `arn:aws:dynamodb:${request.region}:${ACCOUNT}:table/${body.TableName ?? ''}`
  const requestTags = Object.fromEntries((body.Tags ?? []).map((t) => [t.Key, t.Value]))
  const { found } = await onTaggedResource(request, resourceKeys, {
    service: 'dynamodb',
    operation,
    creates: 'CreateTable',
    resource,
    requestTags,
  })
  return { operation, authorizations: found }
}

async function iam(request, resourceKeys) {
  const params = form(request)
  const operation = params.get('Action')
  const role = params.get('RoleName') ?? ''
  const resource = `arn:aws:iam::${ACCOUNT}:role/${role}`
  const requestTags = {}
  for (let n = 1; params.has(`Tags.member.${n}.Key`); n++) {
    requestTags[params.get(`Tags.member.${n}.Key`)] = params.get(`Tags.member.${n}.Value`) ?? ''
  }
  const context = requestTagContext(requestTags)
  const current = operation === 'CreateRole' ? {} : await resourceKeys('iam-role', role, request.region)
  Object.assign(context, resourceTagContext(current.tags, ['aws:ResourceTag', 'iam:ResourceTag']))
  // iam:PermissionsBoundary: the boundary the request sets, else the one the role has.
  // https://docs.aws.amazon.com/service-authorization/latest/reference/list_awsidentityandaccessmanagementiam.html
  const boundary = params.get('PermissionsBoundary') ?? current.boundary
  if (boundary) context['iam:PermissionsBoundary'] = boundary
  const found = [authorize(`iam:${operation}`, resource, context)]
  if (operation === 'CreateRole' && Object.keys(requestTags).length > 0) {
    // https://docs.aws.amazon.com/IAM/latest/UserGuide/id_tags_roles.html
    found.push(authorize('iam:TagRole', resource, context))
  }
  return { operation, authorizations: found }
}

// Lambda's REST paths, by method and shape, and the operation each one is.
// https://docs.aws.amazon.com/lambda/latest/api/API_Operations.html
const LAMBDA_OPERATIONS = [
  ['POST', /^\/2015-03-31\/functions\/?$/, 'CreateFunction'],
  ['GET', /^\/2015-03-31\/functions\/([^/]+)\/?$/, 'GetFunction'],
  ['DELETE', /^\/2015-03-31\/functions\/([^/]+)\/?$/, 'DeleteFunction'],
  ['GET', /^\/2015-03-31\/functions\/([^/]+)\/configuration$/, 'GetFunctionConfiguration'],
  ['PUT', /^\/2015-03-31\/functions\/([^/]+)\/configuration$/, 'UpdateFunctionConfiguration'],
  ['PUT', /^\/2015-03-31\/functions\/([^/]+)\/code$/, 'UpdateFunctionCode'],
  ['GET', /^\/2015-03-31\/functions\/([^/]+)\/policy$/, 'GetPolicy'],
  ['POST', /^\/2015-03-31\/functions\/([^/]+)\/policy$/, 'AddPermission'],
  ['DELETE', /^\/2015-03-31\/functions\/([^/]+)\/policy\/[^/]+$/, 'RemovePermission'],
  ['POST', /^\/2015-03-31\/functions\/([^/]+)\/invocations$/, 'InvokeFunction'],
  ['GET', /^\/2017-03-31\/tags\/(.+)$/, 'ListTags'],
  ['POST', /^\/2017-03-31\/tags\/(.+)$/, 'TagResource'],
  ['DELETE', /^\/2017-03-31\/tags\/(.+)$/, 'UntagResource'],
]

function functionArn(region, nameOrArn) {
  if (nameOrArn.startsWith('arn:')) return nameOrArn.replace(/:(\$LATEST|\d+)$/, '')
  return `arn:aws:lambda:${region}:${ACCOUNT}:function:${nameOrArn}`
}

async function lambda(request, resourceKeys) {
  const body = json(request)
  let operation
  let resource
  for (const [method, pattern, name] of LAMBDA_OPERATIONS) {
    const match = request.method === method && pattern.exec(request.path)
    if (match) {
      operation = name
      resource =
        name === 'CreateFunction'
          ? functionArn(request.region, body.FunctionName ?? '')
          : functionArn(request.region, match[1])
      break
    }
  }
  if (!operation) return unmapped(request, `${request.method} ${request.path}`)
  const { context, found } = await onTaggedResource(request, resourceKeys, {
    service: 'lambda',
    operation,
    creates: 'CreateFunction',
    resource,
    requestTags: body.Tags ?? {},
    extraContext: body.Principal ? { 'lambda:Principal': body.Principal } : {},
  })
  if (operation === 'GetFunction') {
    // "Lambda returns tag data only if you have explicit allow permissions for
    // lambda:ListTags": without it GetFunction still answers, with no tags.
    // https://docs.aws.amazon.com/lambda/latest/api/API_GetFunction.html
    found.push(authorize('lambda:ListTags', resource, context, { whenDenied: 'strip-tags' }))
  }
  // Creating a function, or changing its role, passes the role to Lambda.
  // https://docs.aws.amazon.com/lambda/latest/dg/lambda-intro-execution-role.html
  if (body.Role) {
    found.push(authorize('iam:PassRole', body.Role, { 'iam:PassedToService': 'lambda.amazonaws.com' }))
  }
  return { operation, authorizations: found }
}

async function logs(request, resourceKeys) {
  const operation = target(request)
  const body = json(request)
  // DescribeLogGroups has no resource-level permission: it is authorised on `*`.
  // https://docs.aws.amazon.com/service-authorization/latest/reference/list_amazoncloudwatchlogs.html
  if (operation === 'DescribeLogGroups') {
    return { operation, authorizations: [authorize('logs:DescribeLogGroups', '*')] }
  }
  const resource = body.resourceArn
    ? body.resourceArn.replace(/:\*$/, '')
    : `arn:aws:logs:${request.region}:${ACCOUNT}:log-group:${body.logGroupName ?? ''}`
  const { found } = await onTaggedResource(request, resourceKeys, {
    service: 'logs',
    operation,
    creates: 'CreateLogGroup',
    resource,
    requestTags: body.tags ?? {},
  })
  return { operation, authorizations: found }
}

// API Gateway authorises its own API by HTTP method on the request's path.
// https://docs.aws.amazon.com/apigateway/latest/developerguide/api-gateway-control-access-using-iam-policies-to-create-and-manage-api.html
async function apigateway(request, resourceKeys) {
  const path = request.path.replace(/^\/v2/, '')
  // As sent: a tagged resource's ARN stays URL-encoded (/tags/${UrlEncodedResourceARN}).
  const resource = `arn:aws:apigateway:${request.region}::${request.rawPath.replace(/^\/v2/, '')}`
  const body = json(request)
  const requestTags = body.tags ?? {}
  const context = requestTagContext(requestTags)
  const segments = path.replace(/^\//, '').split('/')
  // Only APIs, stages and domain names carry tags; routes, integrations, authorizers, API
  // mappings and collections have none.
  // https://docs.aws.amazon.com/apigateway/latest/developerguide/apigateway-tagging-supported-resources.html
  const taggable =
    (segments[0] === 'apis' && (segments.length === 2 || (segments.length === 4 && segments[2] === 'stages'))) ||
    (segments[0] === 'domainnames' && segments.length === 2)
  if (taggable && request.method !== 'POST') {
    Object.assign(context, resourceTagContext((await resourceKeys('apigateway', path, request.region)).tags))
  }
  // /tags/{resource-arn}: the tags that count are those of the resource being tagged.
  if (segments[0] === 'tags') {
    const target = segments.slice(1).join('/').split('::')[1]
    if (target) Object.assign(context, resourceTagContext((await resourceKeys('apigateway', target, request.region)).tags))
  }
  const found = [authorize(`apigateway:${request.method}`, resource, context)]
  // "When you create an API, custom domain name, or VPC link …, API Gateway creates the
  // service-linked role for you" — with the caller's iam:CreateServiceLinkedRole, the first
  // time in an account. https://docs.aws.amazon.com/apigateway/latest/developerguide/using-service-linked-roles.html#create-slr
  if (request.method === 'POST' && ['/apis', '/domainnames', '/vpclinks'].includes(path)) {
    found.push(
      authorize(
        'iam:CreateServiceLinkedRole',
        `arn:aws:iam::${ACCOUNT}:role/aws-service-role/${API_GATEWAY_SERVICE}/${API_GATEWAY_SLR}`,
        { 'iam:AWSServiceName': API_GATEWAY_SERVICE },
        {
          serviceLinkedRole: { name: API_GATEWAY_SLR, service: API_GATEWAY_SERVICE },
          // What API Gateway answers (HumanCellAtlas/data-store#1726,
          // amplify-education/serverless-domain-manager#112).
          deniedMessage: 'Caller does not have permissions to create a Service Linked Role.',
        },
      ),
    )
  }
  if (Object.keys(requestTags).length > 0) {
    // A request that carries tags is also authorised as apigateway:TagResource on its own
    // resource, though the Service Authorization Reference lists no such action: "is not
    // authorized to perform: apigateway:TagResource on resource:
    // arn:aws:apigateway:eu-west-3::/apis/<APIID>/stages" (aws-amplify/amplify-cli#12316).
    found.push(authorize('apigateway:TagResource', resource, context, { unlisted: true }))
  }
  return { operation: `${request.method} ${path}`, authorizations: found }
}

// The @connections API is authorised as execute-api:ManageConnections on
// `arn:aws:execute-api:{region}:{account}:{api-id}/{stage}/{METHOD}/@connections/{id}`: "The
// @connections API uses the same ARN format as REST APIs".
// https://docs.aws.amazon.com/apigateway/latest/developerguide/apigateway-websocket-control-access-iam.html
const CONNECTION_OPERATIONS = { POST: 'PostToConnection', GET: 'GetConnection', DELETE: 'DeleteConnection' }

function connections(request) {
  const operation = CONNECTION_OPERATIONS[request.method]
  if (!request.executeApi || !operation || !request.path.startsWith('/@connections/')) {
    return unmapped(request, `${request.method} ${request.path} (call /__execute-api/{api-id}/{stage}/@connections/{id})`)
  }
  const { id, stage } = request.executeApi
  const resource = `arn:aws:execute-api:${request.region}:${ACCOUNT}:${id}/${stage}/${request.method}${request.path}`
  return { operation, authorizations: [authorize('execute-api:ManageConnections', resource)] }
}
