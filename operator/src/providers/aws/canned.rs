//! AWS's documented answers that moto never gives, as raw HTTP responses for
//! `aws-smithy-mocks`: the SDK parses them exactly as it parses AWS's own. (Modeled outputs
//! are built with the SDK's own builders in each test.)

use aws_smithy_runtime_api::http::{Response, StatusCode};
use aws_smithy_types::body::SdkBody;

/// An error in the awsJson protocols (DynamoDB, CloudWatch Logs): the code in `__type`.
pub fn json_error(status: u16, code: &str, message: &str) -> Response {
    let body = serde_json::json!({ "__type": format!("com.amazonaws#{code}"), "message": message });
    response(status, body.to_string(), code)
}

/// An error in the restJson protocol (API Gateway v2): the code in `x-amzn-errortype`, the
/// message in the body.
pub fn rest_json_error(status: u16, code: &str, message: &str) -> Response {
    let body = serde_json::json!({ "message": message });
    let mut response = response(status, body.to_string(), code);
    response
        .headers_mut()
        .insert("content-type", "application/json");
    response
}

fn response(status: u16, body: String, code: &str) -> Response {
    let status = StatusCode::try_from(status).expect("an HTTP status");
    let mut response = Response::new(status, SdkBody::from(body));
    response
        .headers_mut()
        .insert("x-amzn-errortype", code.to_owned());
    response
        .headers_mut()
        .insert("content-type", "application/x-amz-json-1.0");
    response
}
