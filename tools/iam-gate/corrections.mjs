// Where the simulator reads an ARN differently from AWS, corrected before it evaluates.
//
// iam-simulate takes the text before the first `/` of every ARN's resource part as a resource
// type that a policy may not stand for with a wildcard (IAM's "incorrect wildcard usage" rule,
// as for `user` in an IAM ARN). execute-api ARNs have no resource type: their resource part
// begins with the API id, `${ApiId}/${Stage}/${Method}/${ApiSpecificResourcePath}`
// (https://docs.aws.amazon.com/apigateway/latest/developerguide/apigateway-websocket-control-access-iam.html),
// and AWS matches a wildcard there: `arn:aws:execute-api:*:*:*/@connections/*` is the grant the
// Serverless Framework gives every WebSocket function. So for execute-api the gate puts one
// literal segment in front of the resource part of the request and of every policy's
// execute-api ARN alike; the rest is matched as AWS matches it.

const EXECUTE_API = /^(arn:[^:]*:execute-api:[^:]*:[^:]*:)(.*)$/

function withTypeSegment(arn) {
  const match = EXECUTE_API.exec(arn)
  return match ? `${match[1]}execute-api/${match[2]}` : arn
}

function correctPolicy(document) {
  const statements = Array.isArray(document.Statement) ? document.Statement : [document.Statement]
  const fix = (value) =>
    value === undefined ? undefined : Array.isArray(value) ? value.map(withTypeSegment) : withTypeSegment(value)
  return {
    ...document,
    Statement: statements.map((statement) => {
      const fixed = { ...statement }
      if ('Resource' in statement) fixed.Resource = fix(statement.Resource)
      if ('NotResource' in statement) fixed.NotResource = fix(statement.NotResource)
      return fixed
    }),
  }
}

export function correctForSimulator(simulation) {
  if (!simulation.request.action.toLowerCase().startsWith('execute-api:')) return simulation
  const policies = (list) => list?.map((p) => ({ ...p, policy: correctPolicy(p.policy) }))
  return {
    ...simulation,
    request: {
      ...simulation.request,
      resource: { ...simulation.request.resource, resource: withTypeSegment(simulation.request.resource.resource) },
    },
    identityPolicies: policies(simulation.identityPolicies),
    permissionBoundaryPolicies: policies(simulation.permissionBoundaryPolicies),
  }
}
