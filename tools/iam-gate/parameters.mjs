// Each request's parameters, checked against AWS's published service model (botocore's data
// files: each operation's input shape with its required members, lengths, ranges, enums and
// patterns), so that a parameter AWS would refuse is refused here too, whatever moto accepts.
//
// A pattern is matched against the whole value, as AWS's services match it: Lambda refuses the
// function name "my function" ("Member must satisfy regular expression pattern") though
// "my" alone fits `[a-zA-Z0-9-_]+`. A pattern JavaScript cannot compile is not checked, and
// counted (`uncheckedPatterns`).
import { readFileSync, readdirSync } from 'node:fs'
import path from 'node:path'
import { gunzipSync } from 'node:zlib'

// The SigV4 service of a request, and the model that describes it.
function modelName(service, requestPath) {
  if (service === 'apigateway') return requestPath.startsWith('/v2/') ? 'apigatewayv2' : 'apigateway'
  if (service === 'execute-api') return 'apigatewaymanagementapi'
  return service
}

export function parameterChecker(dataDir) {
  const models = new Map()
  const unchecked = new Set()
  const compiled = new Map()

  function model(name) {
    if (models.has(name)) return models.get(name)
    let found = null
    try {
      const versions = readdirSync(path.join(dataDir, name)).sort()
      for (const version of versions.reverse()) {
        const dir = path.join(dataDir, name, version)
        const files = readdirSync(dir)
        const file = files.find((f) => f === 'service-2.json.gz' || f === 'service-2.json')
        if (!file) continue
        const raw = readFileSync(path.join(dir, file))
        found = JSON.parse((file.endsWith('.gz') ? gunzipSync(raw) : raw).toString('utf8'))
        break
      }
    } catch {
      found = null
    }
    models.set(name, found)
    return found
  }

  function pattern(source) {
    if (!compiled.has(source)) {
      try {
        compiled.set(source, new RegExp(`^(?:${source})$`, 'u'))
      } catch {
        compiled.set(source, null)
      }
    }
    const regex = compiled.get(source)
    if (!regex) unchecked.add(source)
    return regex
  }

  // [operation name, input object] for a request, or null when the model names no operation.
  function parse(spec, request) {
    const protocol = spec.metadata.protocol
    if (protocol === 'json') {
      const name = (request.headers['x-amz-target'] ?? '').split('.').pop()
      const operation = spec.operations[name]
      return operation ? [name, operation, jsonBody(request)] : null
    }
    if (protocol === 'query') {
      const params = new URLSearchParams(request.body.toString('utf8'))
      const name = params.get('Action')
      const operation = spec.operations[name]
      if (!operation) return null
      const shape = operation.input && spec.shapes[operation.input.shape]
      return [name, operation, shape ? fromQuery(spec, shape, '', params) : {}]
    }
    if (protocol === 'rest-json') return fromRest(spec, request)
    return null
  }

  function fromRest(spec, request) {
    let best = null
    for (const [name, operation] of Object.entries(spec.operations)) {
      if (operation.http.method !== request.method) continue
      const template = operation.http.requestUri.split('?')[0]
      const names = []
      const source = template
        .split(/(\{[^}]+\})/)
        .map((part) => {
          const variable = /^\{([^}+]+)(\+?)\}$/.exec(part)
          if (!variable) return part.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')
          names.push(variable[1])
          return variable[2] ? '(.+)' : '([^/]+)'
        })
        .join('')
      const match = new RegExp(`^${source}/?$`).exec(request.rawPath)
      if (!match) continue
      const literal = template.replace(/\{[^}]+\}/g, '').length
      if (best && best.literal >= literal) continue
      const uri = Object.fromEntries(names.map((n, i) => [n, decodeURIComponent(match[i + 1])]))
      best = { name, operation, uri, literal }
    }
    if (!best) return null
    const shape = best.operation.input && spec.shapes[best.operation.input.shape]
    const input = {}
    if (shape) {
      const body = jsonBody(request)
      for (const [member, ref] of Object.entries(shape.members ?? {})) {
        const wire = ref.locationName ?? member
        if (ref.location === 'uri') input[member] = best.uri[wire]
        else if (ref.location === 'querystring') {
          const values = request.query.getAll(wire)
          if (values.length > 0) input[member] = spec.shapes[ref.shape].type === 'list' ? values : values[0]
        } else if (ref.location === 'header') {
          const value = request.headers[wire.toLowerCase()]
          if (value !== undefined) input[member] = value
        } else if (ref.location === 'headers') continue
        else if (shape.payload === member) input[member] = body
        else if (body && body[wire] !== undefined) input[member] = body[wire]
      }
    }
    return [best.name, best.operation, input]
  }

  // The query protocol's flattened names (`Tags.member.1.Key`) read back into the shape.
  function fromQuery(spec, shape, prefix, params) {
    const at = (name) => (prefix ? `${prefix}.${name}` : name)
    if (shape.type === 'structure') {
      const value = {}
      for (const [member, ref] of Object.entries(shape.members ?? {})) {
        const read = fromQuery(spec, spec.shapes[ref.shape], at(ref.locationName ?? member), params)
        if (read !== undefined) value[member] = read
      }
      return prefix && Object.keys(value).length === 0 ? undefined : value
    }
    if (shape.type === 'list') {
      const items = []
      const memberName = shape.flattened ? '' : (shape.member.locationName ?? 'member')
      for (let n = 1; ; n++) {
        const item = fromQuery(spec, spec.shapes[shape.member.shape], `${prefix}${memberName ? '.' + memberName : ''}.${n}`, params)
        if (item === undefined) break
        items.push(item)
      }
      return items.length > 0 ? items : params.has(prefix) ? [] : undefined
    }
    if (shape.type === 'map') {
      const map = {}
      for (let n = 1; params.has(`${prefix}.entry.${n}.key`); n++) {
        map[params.get(`${prefix}.entry.${n}.key`)] = params.get(`${prefix}.entry.${n}.value`)
      }
      return Object.keys(map).length > 0 ? map : undefined
    }
    return params.has(prefix) ? params.get(prefix) : undefined
  }

  // Every constraint the value breaks, in AWS's words, with its path.
  function check(spec, shape, value, where, problems) {
    if (value === undefined || value === null) return
    const say = (what) =>
      problems.push(`Value '${String(typeof value === 'object' ? JSON.stringify(value) : value).slice(0, 200)}' at '${where}' failed to satisfy constraint: Member must ${what}`)
    switch (shape.type) {
      case 'structure': {
        // Members by name (json, query, and the top of rest-json) or by their name on the wire
        // (what rest-json bodies nest).
        const memberValue = (member) => {
          const ref = shape.members?.[member] ?? {}
          return value[member] ?? (ref.locationName ? value[ref.locationName] : undefined)
        }
        for (const required of shape.required ?? []) {
          const found = memberValue(required)
          if (found === undefined || found === null) {
            problems.push(`Value null at '${join(where, required)}' failed to satisfy constraint: Member must not be null`)
          }
        }
        for (const [member, ref] of Object.entries(shape.members ?? {})) {
          check(spec, spec.shapes[ref.shape], memberValue(member), join(where, member), problems)
        }
        return
      }
      case 'list': {
        const items = Array.isArray(value) ? value : [value]
        if (shape.min !== undefined && items.length < shape.min) say(`have length greater than or equal to ${shape.min}`)
        if (shape.max !== undefined && items.length > shape.max) say(`have length less than or equal to ${shape.max}`)
        items.forEach((item, i) => check(spec, spec.shapes[shape.member.shape], item, `${where}.${i + 1}`, problems))
        return
      }
      case 'map': {
        const entries = Object.entries(value)
        if (shape.min !== undefined && entries.length < shape.min) say(`have length greater than or equal to ${shape.min}`)
        if (shape.max !== undefined && entries.length > shape.max) say(`have length less than or equal to ${shape.max}`)
        for (const [k, v] of entries) {
          check(spec, spec.shapes[shape.key.shape], k, `${where}.key`, problems)
          check(spec, spec.shapes[shape.value.shape], v, `${where}.${k}`, problems)
        }
        return
      }
      case 'string': {
        const text = String(value)
        const length = [...text].length
        if (shape.min !== undefined && length < shape.min) say(`have length greater than or equal to ${shape.min}`)
        if (shape.max !== undefined && length > shape.max) say(`have length less than or equal to ${shape.max}`)
        if (shape.enum && !shape.enum.includes(text)) say(`satisfy enum value set: [${shape.enum.join(', ')}]`)
        if (shape.pattern) {
          const regex = pattern(shape.pattern)
          if (regex && !regex.test(text)) say(`satisfy regular expression pattern: ${shape.pattern}`)
        }
        return
      }
      case 'integer':
      case 'long':
      case 'double':
      case 'float': {
        const number = Number(value)
        if (shape.min !== undefined && number < shape.min) say(`have value greater than or equal to ${shape.min}`)
        if (shape.max !== undefined && number > shape.max) say(`have value less than or equal to ${shape.max}`)
        return
      }
      default:
        return
    }
  }

  function join(where, member) {
    const name = member.charAt(0).toLowerCase() + member.slice(1)
    return where ? `${where}.${name}` : name
  }

  // null when the request fits its operation's input (or no model describes it), else
  // { operation, problems } with AWS's wording of each broken constraint.
  function checkRequest(request) {
    const spec = model(modelName(request.service, request.rawPath))
    if (!spec) return null
    const parsed = parse(spec, request)
    if (!parsed) return null
    const [name, operation, input] = parsed
    const shape = operation.input && spec.shapes[operation.input.shape]
    if (!shape) return null
    const problems = []
    check(spec, shape, input, '', problems)
    return problems.length > 0 ? { operation: name, problems } : null
  }

  return { checkRequest, uncheckedPatterns: () => [...unchecked] }
}

function jsonBody(request) {
  try {
    return JSON.parse(request.body.toString('utf8') || '{}')
  } catch {
    return {}
  }
}
