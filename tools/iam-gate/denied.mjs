// AWS's AccessDenied answer, in each service's protocol, so that a client sees what AWS would
// send it.

// "User: {principal} is not authorized to perform: {action} on resource: {resource} because no
// identity-based policy allows the {action} action" (or "with an explicit deny in …").
// https://docs.aws.amazon.com/IAM/latest/UserGuide/troubleshoot_access-denied.html
export function deniedMessage(principal, authorization, decision) {
  const why =
    decision === 'ExplicitlyDenied'
      ? 'with an explicit deny in an identity-based policy'
      : decision === 'BoundaryDenied'
        ? 'because no permissions boundary allows the ' + authorization.action + ' action'
        : `because no identity-based policy allows the ${authorization.action} action`
  return `User: ${principal} is not authorized to perform: ${authorization.action} on resource: ${authorization.resource} ${why}`
}

// [status, headers, body] for the request's service.
export function deniedAnswer(service, message, requestId) {
  switch (service) {
    case 'dynamodb':
      // https://docs.aws.amazon.com/amazondynamodb/latest/developerguide/Programming.Errors.html
      return [
        400,
        { 'content-type': 'application/x-amz-json-1.0', 'x-amzn-requestid': requestId },
        JSON.stringify({ __type: 'com.amazon.coral.service#AccessDeniedException', Message: message }),
      ]
    case 'logs':
      return [
        400,
        { 'content-type': 'application/x-amz-json-1.1', 'x-amzn-requestid': requestId },
        JSON.stringify({ __type: 'AccessDeniedException', message }),
      ]
    case 'lambda':
      // https://docs.aws.amazon.com/lambda/latest/api/API_GetFunction.html#API_GetFunction_Errors
      return [
        403,
        { 'content-type': 'application/json', 'x-amzn-errortype': 'AccessDeniedException', 'x-amzn-requestid': requestId },
        JSON.stringify({ Type: 'User', Message: message }),
      ]
    case 'apigateway':
      return [
        403,
        { 'content-type': 'application/json', 'x-amzn-errortype': 'AccessDeniedException', 'x-amzn-requestid': requestId },
        JSON.stringify({ message }),
      ]
    default: {
      // The query protocol (IAM, STS).
      // https://docs.aws.amazon.com/IAM/latest/APIReference/CommonErrors.html
      const escaped = message.replaceAll('&', '&amp;').replaceAll('<', '&lt;').replaceAll('>', '&gt;')
      return [
        403,
        { 'content-type': 'text/xml' },
        `<ErrorResponse xmlns="https://iam.amazonaws.com/doc/2010-05-08/"><Error><Type>Sender</Type><Code>AccessDenied</Code><Message>${escaped}</Message></Error><RequestId>${requestId}</RequestId></ErrorResponse>`,
      ]
    }
  }
}

// AWS's answer to a request that breaks its input's constraints: "1 validation error detected:
// Value 'x' at 'functionName' failed to satisfy constraint: …", under each service's own code.
export function invalidAnswer(service, problems, requestId) {
  const count = problems.length
  const message = `${count} validation error${count === 1 ? '' : 's'} detected: ${problems.join('; ')}`
  const json = (type, body) => [
    400,
    { 'content-type': type, 'x-amzn-requestid': requestId },
    JSON.stringify(body),
  ]
  const rest = (code, body) => [
    400,
    { 'content-type': 'application/json', 'x-amzn-errortype': code, 'x-amzn-requestid': requestId },
    JSON.stringify(body),
  ]
  switch (service) {
    case 'dynamodb':
      return json('application/x-amz-json-1.0', { __type: 'com.amazon.coral.validate#ValidationException', message })
    case 'logs':
      // https://docs.aws.amazon.com/AmazonCloudWatchLogs/latest/APIReference/CommonErrors.html
      return json('application/x-amz-json-1.1', { __type: 'InvalidParameterException', message })
    case 'lambda':
      return rest('ValidationException', { Type: 'User', message })
    case 'apigateway':
    case 'execute-api':
      // API Gateway's documented answer to a bad input is BadRequestException.
      return rest('BadRequestException', { message })
    default: {
      // https://docs.aws.amazon.com/IAM/latest/APIReference/CommonErrors.html: ValidationError
      const escaped = message.replaceAll('&', '&amp;').replaceAll('<', '&lt;').replaceAll('>', '&gt;')
      return [
        400,
        { 'content-type': 'text/xml' },
        `<ErrorResponse xmlns="https://iam.amazonaws.com/doc/2010-05-08/"><Error><Type>Sender</Type><Code>ValidationError</Code><Message>${escaped}</Message></Error><RequestId>${requestId}</RequestId></ErrorResponse>`,
      ]
    }
  }
}
