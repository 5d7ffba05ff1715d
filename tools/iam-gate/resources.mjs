// The current tags (and a role's permissions boundary) of the resource a request touches, read
// from moto directly, as AWS reads them when it evaluates aws:ResourceTag and
// iam:PermissionsBoundary. A resource that does not exist has none.

export function resourceReader(upstream) {
  // moto takes the region from the credential scope; it checks no signature.
  const headers = (region, service, extra = {}) => ({
    authorization: `AWS4-HMAC-SHA256 Credential=iam-gate/20260101/${region}/${service}/aws4_request, SignedHeaders=host, Signature=0`,
    ...extra,
  })
  const call = async (path, init) => {
    const response = await fetch(new URL(path, upstream), init)
    const text = await response.text()
    return response.ok ? text : null
  }
  // An operation of a JSON-protocol service (DynamoDB, CloudWatch Logs), by its target.
  const jsonCall = (region, service, target, version, body) =>
    call('/', {
      method: 'POST',
      headers: headers(region, service, {
        'x-amz-target': target,
        'content-type': `application/x-amz-json-${version}`,
      }),
      body: JSON.stringify(body),
    })
  const iam = (params) =>
    call('/', {
      method: 'POST',
      headers: headers('us-east-1', 'iam', { 'content-type': 'application/x-www-form-urlencoded' }),
      body: new URLSearchParams({ ...params, Version: '2010-05-08' }).toString(),
    })
  const parse = (text) => {
    try {
      return text ? JSON.parse(text) : null
    } catch {
      return null
    }
  }

  // A service-linked role as IAM makes it for `service`, in moto (whose own
  // CreateServiceLinkedRole names API Gateway's role AWSServiceRoleForApigateway_Ops).
  resourceKeys.createServiceLinkedRole = async (name, service) =>
    iam({
      Action: 'CreateRole',
      RoleName: name,
      Path: `/aws-service-role/${service}/`,
      AssumeRolePolicyDocument: JSON.stringify({
        Version: '2012-10-17',
        Statement: [{ Effect: 'Allow', Principal: { Service: service }, Action: 'sts:AssumeRole' }],
      }),
    })
  return resourceKeys

  async function resourceKeys(kind, id, region) {
    switch (kind) {
      case 'dynamodb': {
        const answer = parse(
          await jsonCall(region, 'dynamodb', 'DynamoDB_20120810.ListTagsOfResource', '1.0', { ResourceArn: id }),
        )
        return { tags: Object.fromEntries((answer?.Tags ?? []).map((t) => [t.Key, t.Value])) }
      }
      case 'lambda': {
        const answer = parse(
          await call(`/2017-03-31/tags/${encodeURIComponent(id)}`, { headers: headers(region, 'lambda') }),
        )
        return { tags: answer?.Tags ?? {} }
      }
      case 'logs': {
        const answer = parse(
          await jsonCall(region, 'logs', 'Logs_20140328.ListTagsForResource', '1.1', { resourceArn: id }),
        )
        return { tags: answer?.tags ?? {} }
      }
      case 'apigateway': {
        // The API, stage or domain name itself carries its tags.
        const answer = parse(await call(`/v2${id}`, { headers: headers(region, 'apigateway') }))
        return { tags: answer?.tags ?? {} }
      }
      case 'iam-role': {
        const xml = await iam({ Action: 'GetRole', RoleName: id })
        if (!xml) return { tags: {}, exists: false }
        const tags = {}
        const tagList = /<Tags>([\s\S]*?)<\/Tags>/.exec(xml)?.[1] ?? ''
        for (const member of tagList.matchAll(/<member>\s*<Key>([\s\S]*?)<\/Key>\s*<Value>([\s\S]*?)<\/Value>\s*<\/member>/g)) {
          tags[unescapeXml(member[1])] = unescapeXml(member[2])
        }
        const boundary = /<PermissionsBoundaryArn>([\s\S]*?)<\/PermissionsBoundaryArn>/.exec(xml)?.[1]
        return { tags, boundary: boundary && unescapeXml(boundary), exists: true }
      }
      default:
        return { tags: {} }
    }
  }
}

function unescapeXml(text) {
  return text
    .replaceAll('&lt;', '<')
    .replaceAll('&gt;', '>')
    .replaceAll('&quot;', '"')
    .replaceAll('&apos;', "'")
    .replaceAll('&amp;', '&')
}
