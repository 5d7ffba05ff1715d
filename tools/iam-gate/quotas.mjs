// API Gateway's fixed per-account quotas on custom domain names: "CreateDomainName | 1 request
// every 30 seconds per account" and "DeleteDomainName | 1 request every 30 seconds per account"
// ("API Gateway quotas for creating, deploying and managing an API",
// https://docs.aws.amazon.com/apigateway/latest/developerguide/limits.html; they cannot be
// increased). A request over one answers 429 TooManyRequestsException
// (https://repost.aws/knowledge-center/api-gateway-delete-domain-name). The table, as read here,
// lists no such quota for UpdateDomainName, so none is emulated for it.
//
// moto is one account that every test shares, so the quotas are kept per account a principal
// declares when it is registered (`quotaAccount`): a test that shows the operator under the
// quota owns its windows, and no other test waits for them. Principals that declare none are
// not held to it.

const EVERY_30_SECONDS = 30_000

const DOMAIN_QUOTAS = [
  { operation: 'CreateDomainName', method: 'POST', path: /^\/(?:v2\/)?domainnames\/?$/i },
  { operation: 'DeleteDomainName', method: 'DELETE', path: /^\/(?:v2\/)?domainnames\/[^/]+\/?$/i },
]

// `admit(account, request)` answers null when the request is within its quota (and counts it),
// or `{ operation, waitMs }` when it is over: the request is refused and not counted.
export function quotaKeeper(now = () => Date.now()) {
  const lastAdmitted = new Map()
  return function admit(account, request) {
    if (request.service !== 'apigateway') return null
    const quota = DOMAIN_QUOTAS.find((q) => q.method === request.method && q.path.test(request.path))
    if (!quota) return null
    // Quotas are per account and Region.
    const key = JSON.stringify([account, request.region, quota.operation])
    const at = now()
    const last = lastAdmitted.get(key)
    if (last !== undefined && at - last < EVERY_30_SECONDS) {
      return { operation: quota.operation, waitMs: EVERY_30_SECONDS - (at - last) }
    }
    lastAdmitted.set(key, at)
    return null
  }
}
