// The IAM gate: an HTTP proxy in front of moto that authorizes every request as AWS would
// before moto sees it. moto ignores IAM; this gate turns each request into what IAM authorises
// for it (authorizations.mjs), evaluates that with an independent IAM simulator that reads AWS's
// Service Authorization Reference as data (@cloud-copilot/iam-simulate and iam-data; test
// tooling only, never shipped), and answers a denied request with AWS's AccessDenied in the
// service's own protocol. Every decision is appended to a JSON Lines log that the suite sums up
// at the end (summary.mjs) and that tests read to see what was asked.
//
// Who asks is known by the SigV4 access key id: each principal in the principals file (or
// registered at run time by a test through POST /__iam-gate/principals) carries its identity
// policies and permissions boundary. Any other key is the account's owner: the tests' own
// credentials, which set up and inspect moto; those requests pass unchecked and are counted.
//
//   node tools/iam-gate/gate.mjs --listen PORT --upstream http://127.0.0.1:MOTO \
//     --principals tools/iam-gate/principals.json --log target/iam-gate.jsonl
import { createWriteStream, readFileSync } from 'node:fs'
import http from 'node:http'
import path from 'node:path'
import { parseArgs } from 'node:util'
import { randomUUID } from 'node:crypto'

import { runSimulation, runUnsafeSimulation } from '@cloud-copilot/iam-simulate'

import { ACCOUNT, authorizationsFor } from './authorizations.mjs'
import { correctForSimulator } from './corrections.mjs'
import { deniedAnswer, deniedMessage, invalidAnswer, throttledAnswer } from './denied.mjs'
import { parameterChecker } from './parameters.mjs'
import { quotaKeeper } from './quotas.mjs'
import { resourceReader } from './resources.mjs'
import { fillGaps } from './sar-gaps.mjs'

const { values: args } = parseArgs({
  options: {
    listen: { type: 'string' },
    upstream: { type: 'string' },
    principals: { type: 'string' },
    log: { type: 'string' },
    // botocore's data directory: AWS's service models, for the parameter checks.
    'botocore-data': { type: 'string' },
    root: { type: 'string', default: process.cwd() },
  },
})
for (const required of ['listen', 'upstream', 'principals', 'log', 'botocore-data']) {
  if (!args[required]) {
    console.error(`iam-gate: --${required} is required`)
    process.exit(2)
  }
}

await fillGaps()

const principals = new Map()
let generations = 0
function addPrincipal(accessKeyId, spec, source) {
  const policies = (list) =>
    (list ?? []).map((entry) =>
      typeof entry === 'string'
        ? { name: entry, policy: JSON.parse(readFileSync(path.resolve(args.root, entry), 'utf8')) }
        : entry,
    )
  if (!spec.arn) throw new Error(`${source}: principal ${accessKeyId} has no arn`)
  const principal = {
    arn: spec.arn,
    identityPolicies: policies(spec.identityPolicies),
    permissionBoundaryPolicies: policies(spec.permissionsBoundary),
    expectDenials: Boolean(spec.expectDenials),
    // The account whose API Gateway quotas this principal is held to (quotas.mjs); none: not held.
    quotaAccount: spec.quotaAccount ?? null,
  }
  // Tests register their operator again and again; the same registration keeps its answers,
  // a changed one is told from the earlier by its generation.
  const earlier = principals.get(accessKeyId)
  const same = earlier && JSON.stringify({ ...earlier, generation: undefined }) === JSON.stringify(principal)
  principals.set(accessKeyId, { ...principal, generation: same ? earlier.generation : ++generations })
}
const file = JSON.parse(readFileSync(args.principals, 'utf8'))
for (const [key, spec] of Object.entries(file.principals)) addPrincipal(key, spec, args.principals)

const upstream = new URL(args.upstream)
const parameters = parameterChecker(args['botocore-data'])
const resourceKeys = resourceReader(upstream)
const admitWithinQuota = quotaKeeper()
const log = createWriteStream(args.log, { flags: 'a' })
let sequence = 0

function credentialScope(headers) {
  const authorization = headers['authorization'] ?? ''
  const match = /Credential=([^/]+)\/(\d{8})\/([^/]+)\/([^/]+)\/aws4_request/.exec(authorization)
  return match ? { accessKeyId: match[1], region: match[3], service: match[4] } : null
}

// The simulator is a pure function of its inputs, and a steady reconcile asks the same
// questions again and again (apigateway:GET alone costs ~10 ms: it is matched against ~45
// resource types), so answers are kept, keyed by everything the simulator reads.
const answers = new Map()
const MAX_ANSWERS = 100_000

async function decide(principal, authorization) {
  const key = JSON.stringify([
    principal.generation,
    authorization.action,
    authorization.resource,
    Object.entries(authorization.context).sort(),
    Boolean(authorization.unlisted),
  ])
  const known = answers.get(key)
  if (known) return known
  const answer = await simulate(principal, authorization)
  if (answers.size >= MAX_ANSWERS) answers.clear()
  answers.set(key, answer)
  return answer
}

async function simulate(principal, authorization) {
  const asked = {
    request: {
      principal: principal.arn,
      action: authorization.action,
      resource: { resource: authorization.resource, accountId: ACCOUNT },
      contextVariables: authorization.context,
    },
    identityPolicies: principal.identityPolicies,
    serviceControlPolicies: [],
    resourceControlPolicies: [],
  }
  if (principal.permissionBoundaryPolicies.length > 0) {
    asked.permissionBoundaryPolicies = principal.permissionBoundaryPolicies
  }
  const simulation = correctForSimulator(asked)
  if (authorization.unlisted) {
    // An action AWS enforces but its Reference does not list (see authorizations.mjs): the
    // simulator evaluates the policies' statements for it without its data.
    return { decision: runUnsafeSimulation(simulation, {}), unlisted: true }
  }
  const result = await runSimulation(simulation, {})
  if (result.resultType === 'error') {
    return { decision: 'Error', error: JSON.stringify(result.errors) }
  }
  const ignored =
    result.resultType === 'single'
      ? result.result.ignoredContextKeys
      : result.results.flatMap((r) => r.ignoredContextKeys ?? [])
  return { decision: result.overallResult, ignoredContextKeys: ignored }
}

function send(response, status, headers, text = '') {
  response.writeHead(status, { ...headers, 'content-length': Buffer.byteLength(text) }).end(text)
}

function readBody(stream) {
  return new Promise((resolve, reject) => {
    const chunks = []
    stream.on('data', (chunk) => chunks.push(chunk))
    stream.on('end', () => resolve(Buffer.concat(chunks)))
    stream.on('error', reject)
  })
}

// The @connections API of one stage, as a room's function calls it: on AWS
// `https://{api-id}.execute-api.{region}.amazonaws.com/{stage}/@connections/{id}`. On loopback
// no host name can carry the API id, so a test points the function's CALLBACK_URL at
// `/__execute-api/{api-id}/{stage}` here; the gate reads the API and stage from the path and
// hands moto the path it serves (`/@connections/{id}`).
const CONNECTIONS = /^\/__execute-api\/([^/]+)\/([^/]+)(\/(?:@|%40)connections(?:\/.*)?)$/i

function connectionsApi(url) {
  const match = CONNECTIONS.exec(url.pathname)
  return match ? { api: { id: match[1], stage: match[2] }, path: match[3] } : null
}

// Lambda's Invoke, as a room's function calls it to hand pages of a broadcast to copies of
// itself: moto cannot run a function, so a test points the function's Lambda endpoint at
// `/__lambda-invoke/{port}` here, where the test serves Invoke on loopback; the gate authorizes
// the request as any other and hands it to that port.
const LAMBDA_INVOKE = /^\/__lambda-invoke\/(\d{1,5})(\/2015-03-31\/functions\/[^/]+\/invocations)$/

function lambdaInvoke(url) {
  const match = LAMBDA_INVOKE.exec(url.pathname)
  return match ? { port: Number(match[1]), path: match[2] } : null
}

function forward(request, body, path, to = { hostname: upstream.hostname, port: upstream.port }) {
  return new Promise((resolve, reject) => {
    const outgoing = http.request(
      {
        host: to.hostname,
        port: to.port,
        method: request.method,
        path,
        headers: request.headers,
      },
      resolve,
    )
    outgoing.on('error', reject)
    outgoing.end(body)
  })
}

// For tests: register a principal, or ask the simulator about one authorization without a
// request (an escalation the policy must refuse, a room policy inside its boundary).
async function admin(request, response, body) {
  const spec = JSON.parse(body.toString('utf8') || '{}')
  if (request.method === 'POST' && request.url === '/__iam-gate/principals') {
    addPrincipal(spec.accessKeyId, spec, 'POST /__iam-gate/principals')
    send(response, 204, {})
    return
  }
  if (request.method === 'POST' && request.url === '/__iam-gate/simulate') {
    const principal = {
      arn: spec.arn ?? `arn:aws:iam::${ACCOUNT}:role/simulated`,
      identityPolicies: spec.identityPolicies ?? [],
      permissionBoundaryPolicies: spec.permissionsBoundary ?? [],
    }
    const outcome = await simulate(principal, {
      action: spec.action,
      resource: spec.resource,
      context: spec.context ?? {},
      unlisted: spec.unlisted,
    })
    send(response, 200, { 'content-type': 'application/json' }, JSON.stringify(outcome))
    return
  }
  send(response, 404, {})
}

async function handle(request, response) {
  const body = await readBody(request)
  if (request.url.startsWith('/__iam-gate/')) return admin(request, response, body)

  const scope = credentialScope(request.headers)
  const principal = scope && principals.get(scope.accessKeyId)
  const record = { seq: ++sequence, principal: scope?.accessKeyId ?? null, service: scope?.service ?? null }
  const url = new URL(request.url, 'http://gate')
  const connections = connectionsApi(url)
  const invoke = lambdaInvoke(url)
  const pathname = connections ? connections.path : invoke ? invoke.path : url.pathname
  const asking = {
    method: request.method,
    path: decodePath(pathname),
    rawPath: pathname,
    executeApi: connections?.api,
    query: url.searchParams,
    headers: request.headers,
    body,
    service: scope?.service,
    region: scope?.region,
  }
  let stripTags = false
  let denial = null
  // Made once the whole request is let through: a refused CreateApi makes nothing.
  let serviceLinkedRole = null
  if (principal) {
    const asked = await authorizationsFor(asking, resourceKeys)
    record.arn = principal.arn
    record.operation = asked.operation
    record.authorizations = []
    if (asked.unmapped) {
      record.unmapped = asked.unmapped
      denial = { message: asked.unmapped }
    }
    for (const authorization of asked.authorizations) {
      const linked = authorization.serviceLinkedRole
      if (linked && (await resourceKeys('iam-role', linked.name)).exists) {
        // The account has it already: nothing to create, nothing to authorize.
        record.authorizations.push({ ...authorization, decision: 'NotNeeded' })
        continue
      }
      const outcome = await decide(principal, authorization)
      record.authorizations.push({ ...authorization, ...outcome })
      if (outcome.decision === 'Allowed') {
        if (linked) serviceLinkedRole = linked
        continue
      }
      if (authorization.whenDenied === 'strip-tags') {
        stripTags = true
        continue
      }
      if (!denial) {
        denial = {
          message:
            outcome.decision === 'Error'
              ? `the IAM simulator could not evaluate ${authorization.action} on ${authorization.resource}: ${outcome.error}`
              : (authorization.deniedMessage ?? deniedMessage(principal.arn, authorization, outcome.decision)),
        }
      }
    }
    if (serviceLinkedRole && !denial) {
      await resourceKeys.createServiceLinkedRole(serviceLinkedRole.name, serviceLinkedRole.service)
    }
    record.denied = Boolean(denial)
    if (denial && principal.expectDenials) record.expected = true
  } else {
    record.unchecked = true
  }
  // Authorized (or the owner's): the parameters next, as AWS's service model constrains them.
  const invalid = !denial && scope ? parameters.checkRequest(asking) : null
  if (invalid) {
    record.invalid = invalid
    if (principal?.expectDenials) record.expected = true
  }
  // Allowed and valid: within the account's quotas last, as a throttled request is one AWS
  // has authorized.
  const overQuota = !denial && !invalid && principal?.quotaAccount ? admitWithinQuota(principal.quotaAccount, asking) : null
  if (overQuota) {
    record.throttled = overQuota
    if (principal.expectDenials) record.expected = true
  }
  log.write(JSON.stringify(record) + '\n')

  const refusal = denial
    ? deniedAnswer(scope.service, denial.message, randomUUID())
    : invalid
      ? invalidAnswer(scope.service, invalid.problems, randomUUID())
      : overQuota && throttledAnswer(randomUUID())
  if (refusal) {
    send(response, ...refusal)
    return
  }
  const answer = invoke
    ? await forward(request, body, pathname + url.search, { hostname: '127.0.0.1', port: invoke.port })
    : await forward(request, body, connections ? pathname + url.search : request.url)
  if (!stripTags || answer.statusCode !== 200) {
    response.writeHead(answer.statusCode, answer.headers)
    answer.pipe(response)
    return
  }
  const function_ = JSON.parse((await readBody(answer)).toString('utf8'))
  delete function_.Tags
  const text = JSON.stringify(function_)
  const headers = { ...answer.headers }
  delete headers['transfer-encoding']
  send(response, 200, headers, text)
}

// Paths as IAM names resources: percent-decoded, so `/v2/domainnames/a.example.com` and
// `/2015-03-31/functions/arn%3Aaws%3A…` read as AWS writes them in ARNs.
function decodePath(pathname) {
  return pathname
    .split('/')
    .map((segment) => {
      try {
        return decodeURIComponent(segment)
      } catch {
        return segment
      }
    })
    .join('/')
}

const server = http.createServer((request, response) => {
  handle(request, response).catch((error) => {
    console.error('iam-gate:', error)
    if (!response.headersSent) response.writeHead(502, { 'content-type': 'text/plain' })
    response.end(`iam-gate: ${error.message}`)
  })
})
server.keepAliveTimeout = 60_000
server.listen(Number(args.listen), '127.0.0.1', () => {
  console.log(`iam-gate on 127.0.0.1:${args.listen} in front of ${upstream.origin}`)
})
