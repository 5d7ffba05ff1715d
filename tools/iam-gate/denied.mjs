// AWS's answers to a refused request, in each service's protocol, so that a client sees what
// AWS would send it: AccessDenied for what IAM does not allow, the service's validation error
// for what breaks its input's constraints.

// "User: {principal} is not authorized to perform: {action} on resource: {resource} because no
// identity-based policy allows the {action} action" (or "with an explicit deny in …").
// https://docs.aws.amazon.com/IAM/latest/UserGuide/troubleshoot_access-denied.html
export function deniedMessage(principal, authorization, decision) {
  const why =
    decision === 'ExplicitlyDenied'
      ? 'with an explicit deny in an identity-based policy'
      : `because no identity-based policy allows the ${authorization.action} action`
  return `User: ${principal} is not authorized to perform: ${authorization.action} on resource: ${authorization.resource} ${why}`
}

// [status, headers, body] of AccessDenied for the request's service.
export function deniedAnswer(service, message, requestId) {
  const answer = protocol(requestId)
  switch (service) {
    case 'dynamodb':
      // https://docs.aws.amazon.com/amazondynamodb/latest/developerguide/Programming.Errors.html
      return answer.json(400, '1.0', { __type: 'com.amazon.coral.service#AccessDeniedException', Message: message })
    case 'logs':
      return answer.json(400, '1.1', { __type: 'AccessDeniedException', message })
    case 'lambda':
      // https://docs.aws.amazon.com/lambda/latest/api/API_GetFunction.html#API_GetFunction_Errors
      return answer.rest(403, 'AccessDeniedException', { Type: 'User', Message: message })
    case 'apigateway':
      return answer.rest(403, 'AccessDeniedException', { message })
    case 'execute-api':
      // API Gateway's own answer for an execute-api call IAM refuses: 403 with `Message`
      // (aws/aws-cdk#18410 quotes it for @connections; SDKs read it as ForbiddenException).
      return answer.rest(403, 'AccessDeniedException', { Message: message })
    default:
      // https://docs.aws.amazon.com/IAM/latest/APIReference/CommonErrors.html
      return answer.query(403, 'AccessDenied', message)
  }
}

// AWS's answer to a request that breaks its input's constraints: "1 validation error detected:
// Value 'x' at 'functionName' failed to satisfy constraint: …", under each service's own code.
export function invalidAnswer(service, problems, requestId) {
  const count = problems.length
  const message = `${count} validation error${count === 1 ? '' : 's'} detected: ${problems.join('; ')}`
  const answer = protocol(requestId)
  switch (service) {
    case 'dynamodb':
      return answer.json(400, '1.0', { __type: 'com.amazon.coral.validate#ValidationException', message })
    case 'logs':
      // https://docs.aws.amazon.com/AmazonCloudWatchLogs/latest/APIReference/CommonErrors.html
      return answer.json(400, '1.1', { __type: 'InvalidParameterException', message })
    case 'lambda':
      return answer.rest(400, 'ValidationException', { Type: 'User', message })
    case 'apigateway':
    case 'execute-api':
      // API Gateway's documented answer to a bad input is BadRequestException.
      return answer.rest(400, 'BadRequestException', { message })
    default:
      // https://docs.aws.amazon.com/IAM/latest/APIReference/CommonErrors.html: ValidationError
      return answer.query(400, 'ValidationError', message)
  }
}

// API Gateway's answer to a request over one of its quotas (quotas.mjs): 429
// TooManyRequestsException, "The request has reached its throttling limit. Retry after the
// specified time period." (UpdateDomainName's and DeleteDomainName's errors in the API Gateway
// reference), which the SDKs retry as throttling.
export function throttledAnswer(requestId) {
  return protocol(requestId).rest(429, 'TooManyRequestsException', { message: 'Too Many Requests' })
}

// An error in each of the protocols the gate answers in: JSON with `__type` (DynamoDB, Logs),
// REST-JSON with `x-amzn-ErrorType` (Lambda, API Gateway), the query protocol's XML (IAM, STS).
function protocol(requestId) {
  return {
    json: (status, version, body) => [
      status,
      { 'content-type': `application/x-amz-json-${version}`, 'x-amzn-requestid': requestId },
      JSON.stringify(body),
    ],
    rest: (status, code, body) => [
      status,
      { 'content-type': 'application/json', 'x-amzn-errortype': code, 'x-amzn-requestid': requestId },
      JSON.stringify(body),
    ],
    query: (status, code, message) => {
      const escaped = message.replaceAll('&', '&amp;').replaceAll('<', '&lt;').replaceAll('>', '&gt;')
      return [
        status,
        { 'content-type': 'text/xml' },
        `<ErrorResponse xmlns="https://iam.amazonaws.com/doc/2010-05-08/"><Error><Type>Sender</Type><Code>${code}</Code><Message>${escaped}</Message></Error><RequestId>${requestId}</RequestId></ErrorResponse>`,
      ]
    },
  }
}
