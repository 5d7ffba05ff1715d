//! Fan-out across invocations: a broadcast past one page of recipients is handed, a page to
//! each, to asynchronous invocations of the room's own function, which post in parallel at
//! their share of the room's posting budget. Lambda delivers an asynchronous event at least
//! once (and retries one that failed twice more), so each page names its message and place,
//! and a page already posted is skipped.
//! <https://docs.aws.amazon.com/lambda/latest/dg/invocation-async.html>

use std::time::Duration;

use aws_sdk_lambda::primitives::Blob;
use aws_sdk_lambda::types::InvocationType;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::contract::FANOUT_PAGE_RECIPIENTS;
use crate::store::Recipient;

/// The key a page's event carries, and nothing API Gateway sends does.
pub const FANOUT_EVENT_KEY: &str = "chatroomFanout";

/// A page of one broadcast, as the invocation that posts it receives it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct FanoutPage {
    /// The message, as `Fanout::message` names it (hex).
    pub message: String,
    pub page: u32,
    /// Where in its page this part begins: a part handed on before its poster's deadline
    /// begins past what that poster posted.
    pub offset: u32,
    /// The `@connections` endpoint of the room's stage.
    pub endpoint: String,
    /// The frame, as every recipient gets it.
    pub payload: String,
    /// The connection ids of this part.
    pub recipients: Vec<String>,
    /// This page's share of the room's budget.
    pub posts_per_second: f64,
    /// Only connections made before this instant are removed on a 410 (epoch milliseconds).
    pub settled_before_ms: i64,
}

impl FanoutPage {
    /// This part of its page, as the fan-out row records it.
    pub fn segment(&self) -> String {
        format!("{}@{}", self.page, self.offset)
    }
}

/// The event holds a page of a broadcast, not an API Gateway request.
pub fn is_fanout_event(event: &Value) -> bool {
    event.get(FANOUT_EVENT_KEY).is_some()
}

/// The pages of a broadcast to `recipients`, each with its share of `posts_per_second`.
pub fn pages(
    recipients: &[Recipient],
    payload: String,
    endpoint: &str,
    message: u64,
    posts_per_second: u32,
    settled_before_ms: i64,
) -> Vec<FanoutPage> {
    let chunks: Vec<&[Recipient]> = recipients.chunks(FANOUT_PAGE_RECIPIENTS).collect();
    let share = f64::from(posts_per_second) / chunks.len().max(1) as f64;
    chunks
        .into_iter()
        .zip(0..)
        .map(|(chunk, page)| FanoutPage {
            message: format!("{message:016x}"),
            page,
            offset: 0,
            endpoint: endpoint.to_owned(),
            payload: payload.clone(),
            recipients: chunk.iter().map(|r| r.id.clone()).collect(),
            posts_per_second: share,
            settled_before_ms,
        })
        .collect()
}

/// Invokes the room's own function, asynchronously, with pages.
#[derive(Clone, Debug)]
pub struct Workers {
    lambda: aws_sdk_lambda::Client,
    function: String,
}

/// Most invocations requested at once while a broadcast is handed out.
const INVOKES_IN_FLIGHT: usize = 16;

impl Workers {
    pub fn new(sdk: &aws_config::SdkConfig, function: &str) -> Self {
        Self {
            lambda: aws_sdk_lambda::Client::new(sdk),
            function: function.to_owned(),
        }
    }

    /// Queues one asynchronous invocation per page; answers the pages Lambda did not take.
    pub async fn invoke_all(&self, pages: Vec<FanoutPage>) -> Vec<FanoutPage> {
        use futures::StreamExt;
        futures::stream::iter(pages)
            .map(|page| async move {
                match self.invoke(&page).await {
                    Ok(()) => None,
                    Err(error) => {
                        tracing::error!(page = page.page, %error, "could not hand a page on");
                        Some(page)
                    }
                }
            })
            .buffer_unordered(INVOKES_IN_FLIGHT)
            .filter_map(|left| async move { left })
            .collect()
            .await
    }

    pub async fn invoke(&self, page: &FanoutPage) -> Result<(), String> {
        let event = serde_json::json!({ FANOUT_EVENT_KEY: page });
        let answered = self
            .lambda
            .invoke()
            .function_name(&self.function)
            .invocation_type(InvocationType::Event)
            .payload(Blob::new(event.to_string()))
            .send()
            .await;
        match answered {
            Ok(answer) if answer.status_code() == 202 => Ok(()),
            Ok(answer) => Err(format!("Invoke answered {}", answer.status_code())),
            Err(error) => Err(aws_sdk_lambda::error::DisplayErrorContext(error).to_string()),
        }
    }
}

/// How long before its deadline a poster stops and hands the rest of its page on: the hand-on
/// itself, and the row that records the part, must fit.
pub const HAND_ON_MARGIN: Duration = Duration::from_secs(2);

#[cfg(test)]
mod tests {
    use super::*;

    fn recipients(n: usize) -> Vec<Recipient> {
        (0..n)
            .map(|i| Recipient {
                id: format!("c{i}"),
                display_name: Some("x".into()),
            })
            .collect()
    }

    #[test]
    fn pages_split_the_room_and_the_budget() {
        let pages = pages(&recipients(2_500), "{}".into(), "http://e", 0xab, 6_000, 7);
        assert_eq!(pages.len(), 3);
        assert_eq!(
            pages.iter().map(|p| p.recipients.len()).collect::<Vec<_>>(),
            [1_000, 1_000, 500]
        );
        assert!(pages.iter().all(|p| p.posts_per_second == 2_000.0));
        assert_eq!(pages[2].segment(), "2@0");
        assert_eq!(pages[0].message, "00000000000000ab");
        assert_eq!(pages[0].recipients[0], "c0");
    }

    #[test]
    fn a_page_event_is_told_apart_from_api_gateways() {
        let page = pages(&recipients(1), "{}".into(), "http://e", 1, 1, 0).remove(0);
        assert!(is_fanout_event(
            &serde_json::json!({ FANOUT_EVENT_KEY: page })
        ));
        assert!(!is_fanout_event(&serde_json::json!({"requestContext": {}})));
    }
}
