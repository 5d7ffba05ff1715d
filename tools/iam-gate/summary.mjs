// Sums up the IAM gate's log after a run: how many requests were authorized and checked, and
// every one refused (denied, invalid for AWS's service model, or over a quota) without the test expecting
// it. Exits 1 if there is any.
//   node tools/iam-gate/summary.mjs target/iam-gate.jsonl
import { readFileSync } from 'node:fs'

const file = process.argv[2]
if (!file) {
  console.error('usage: summary.mjs LOG')
  process.exit(2)
}
let checked = 0
let evaluations = 0
let unchecked = 0
let expected = 0
let answeredWithoutTags = 0
let invalidExpected = 0
let throttledExpected = 0
const unexpected = []
const actions = new Set()
for (const line of readFileSync(file, 'utf8').split('\n')) {
  if (!line) continue
  const record = JSON.parse(line)
  if (record.invalid) {
    if (record.expected) invalidExpected++
    else unexpected.push(record)
  }
  if (record.throttled) {
    if (record.expected) throttledExpected++
    else unexpected.push(record)
  }
  if (record.unchecked) {
    unchecked++
    continue
  }
  checked++
  for (const a of record.authorizations ?? []) {
    evaluations++
    actions.add(a.action)
    if (a.whenDenied && a.decision !== 'Allowed') answeredWithoutTags++
  }
  if (!record.denied) continue
  if (record.expected) expected++
  else unexpected.push(record)
}
console.log(
  `IAM gate: ${checked} requests authorized by the simulator (${evaluations} evaluations, ${actions.size} actions), ` +
    `${unexpected.length} refused unexpectedly (denied, invalid or throttled), ${expected} denied as tests expected, ` +
    `${answeredWithoutTags} answered without tags (GetFunction without lambda:ListTags); ` +
    `${unchecked} requests were the tests' own (account owner: parameters checked, IAM not); ` +
    `${invalidExpected} refused for their parameters as tests expected; ` +
    `${throttledExpected} over API Gateway's domain quota as tests expected`,
)
for (const record of unexpected.slice(0, 50)) {
  const refused = (record.authorizations ?? []).filter(
    (a) => !['Allowed', 'NotNeeded'].includes(a.decision) && !a.whenDenied,
  )
  if (record.throttled) {
    console.log(`  throttled: ${record.service} ${record.throttled.operation} (${record.throttled.waitMs} ms inside the quota's window)`)
    continue
  }
  if (record.invalid) {
    console.log(`  invalid: ${record.service} ${record.invalid.operation}: ${record.invalid.problems.join('; ')}`)
    continue
  }
  console.log(
    `  denied: ${record.service} ${record.operation}: ` +
      (record.unmapped ?? refused.map((a) => `${a.action} on ${a.resource} (${a.decision}${a.error ? ': ' + a.error : ''})`).join('; ')),
  )
}
process.exit(unexpected.length > 0 ? 1 : 0)
