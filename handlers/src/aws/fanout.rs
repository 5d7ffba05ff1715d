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

/// What one worker is given to post a second, by the function's memory: about a quarter of what
/// a 128 MB function was measured to post over plain HTTP (~1,600 a second, docs/benchmarks.md)
/// — on AWS every post is HTTPS, which the benchmark does not measure, and a function's CPU
/// share is Lambda's to vary — in proportion to memory as Lambda's CPU is, and at most 1,500
/// (64 posts in flight at ~22 ms each post about 2,900 a second). Without a memory size,
/// Lambda's default of 128 MB.
pub fn worker_posts_per_second(memory_mb: Option<u32>) -> u32 {
    let memory_mb = memory_mb.unwrap_or(128);
    (memory_mb.saturating_mul(400) / 128).clamp(100, 1_500)
}

/// Lambda's limit on an asynchronous event, and the room the ids of a page may take in it
/// beside the frame and the rest of the page.
/// <https://docs.aws.amazon.com/lambda/latest/api/API_Invoke.html>
const ASYNC_EVENT_BYTES: usize = 1024 * 1024;
const PAGE_FIELDS_BYTES: usize = 4 * 1024;

/// The pages of a broadcast to `recipients`: as few as post the room's budget with each
/// worker at `worker_posts_per_second` (fewer concurrent executions than a page per thousand,
/// and each one busy), but never more than one page per [`FANOUT_PAGE_RECIPIENTS`] recipients
/// and never an event past Lambda's 1 MB. Each page gets an equal share of the budget.
pub fn pages(
    recipients: &[Recipient],
    payload: String,
    endpoint: &str,
    message: u64,
    posts_per_second: u32,
    worker_posts_per_second: u32,
    settled_before_ms: i64,
) -> Vec<FanoutPage> {
    let workers = posts_per_second.div_ceil(worker_posts_per_second.max(1)) as usize;
    let most_pages = recipients.len().div_ceil(FANOUT_PAGE_RECIPIENTS).max(1);
    let per_page = recipients
        .len()
        .div_ceil(workers.clamp(1, most_pages))
        .max(1);
    // The frame travels as a JSON string: escaping can double it.
    let id_bytes = ASYNC_EVENT_BYTES
        .saturating_sub(2 * payload.len() + endpoint.len() + PAGE_FIELDS_BYTES)
        .max(1);
    let chunks = split(recipients, per_page, id_bytes);
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

/// Consecutive runs of at most `per_page` recipients whose ids, as a JSON list, take at most
/// `id_bytes`.
fn split(recipients: &[Recipient], per_page: usize, id_bytes: usize) -> Vec<&[Recipient]> {
    let mut chunks = Vec::new();
    let (mut start, mut bytes) = (0, 0);
    for (index, recipient) in recipients.iter().enumerate() {
        // Quotes and a comma; an id is API Gateway's, with nothing to escape.
        let size = recipient.id.len() + 3;
        if index > start && (index - start == per_page || bytes + size > id_bytes) {
            chunks.push(&recipients[start..index]);
            (start, bytes) = (index, 0);
        }
        bytes += size;
    }
    if start < recipients.len() {
        chunks.push(&recipients[start..]);
    }
    chunks
}

/// Invokes the room's own function, asynchronously, with pages.
#[derive(Clone, Debug)]
pub struct Workers {
    lambda: aws_sdk_lambda::Client,
    function: String,
    /// What each invocation is given to post a second ([`worker_posts_per_second`]).
    posts_per_second: u32,
}

/// Most invocations requested at once while a broadcast is handed out.
const INVOKES_IN_FLIGHT: usize = 16;

impl Workers {
    pub fn new(sdk: &aws_config::SdkConfig, function: &str, posts_per_second: u32) -> Self {
        Self {
            lambda: aws_sdk_lambda::Client::new(sdk),
            function: function.to_owned(),
            posts_per_second,
        }
    }

    pub fn posts_per_second(&self) -> u32 {
        self.posts_per_second
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
        let pages = pages(
            &recipients(2_500),
            "{}".into(),
            "http://e",
            0xab,
            6_000,
            400,
            7,
        );
        assert_eq!(
            pages.len(),
            3,
            "no page under a thousand when a budget wants more"
        );
        assert_eq!(
            pages.iter().map(|p| p.recipients.len()).collect::<Vec<_>>(),
            [834, 834, 832]
        );
        assert!(pages.iter().all(|p| p.posts_per_second == 2_000.0));
        assert_eq!(pages[2].segment(), "2@0");
        assert_eq!(pages[0].message, "00000000000000ab");
        assert_eq!(pages[0].recipients[0], "c0");
    }

    #[test]
    fn a_budget_goes_to_as_few_workers_as_can_post_it() {
        // 100,000 at 10,000 a second, a 128 MB worker at 400: 25 pages of 4,000, not 100 of
        // 1,000, each ten seconds of posting at its share.
        let rate = worker_posts_per_second(Some(128));
        let pages = pages(
            &recipients(100_000),
            "{}".into(),
            "http://e",
            1,
            10_000,
            rate,
            0,
        );
        assert_eq!(pages.len(), 25);
        assert!(pages.iter().all(|p| p.recipients.len() == 4_000));
        assert!(pages.iter().all(|p| p.posts_per_second == 400.0));
        let larger = worker_posts_per_second(Some(1_769));
        assert_eq!(larger, 1_500);
        let bigger = super::pages(
            &recipients(100_000),
            "{}".into(),
            "http://e",
            1,
            10_000,
            larger,
            0,
        );
        assert_eq!(bigger.len(), 7);
        assert_eq!(
            worker_posts_per_second(None),
            400,
            "Lambda's default 128 MB"
        );
    }

    #[test]
    fn a_page_event_stays_inside_lambdas_asynchronous_limit() {
        // A budget one worker can post, a frame near API Gateway's 128 KB: the ids of 100,000
        // would take ~1.5 MB, so the pages are cut by bytes.
        let frame = "\"".repeat(120 * 1024);
        let pages = pages(&recipients(100_000), frame, "http://e", 1, 100, 400, 0);
        assert!(pages.len() > 1);
        assert_eq!(
            pages.iter().map(|p| p.recipients.len()).sum::<usize>(),
            100_000
        );
        for page in &pages {
            let event = serde_json::json!({ FANOUT_EVENT_KEY: page }).to_string();
            assert!(event.len() <= ASYNC_EVENT_BYTES, "{} bytes", event.len());
        }
        let budget: f64 = pages.iter().map(|p| p.posts_per_second).sum();
        assert!(
            (budget - 100.0).abs() < 1e-6,
            "the budget is shared, not multiplied"
        );
    }

    #[test]
    fn a_page_event_is_told_apart_from_api_gateways() {
        let page = pages(&recipients(1), "{}".into(), "http://e", 1, 1, 400, 0).remove(0);
        assert!(is_fanout_event(
            &serde_json::json!({ FANOUT_EVENT_KEY: page })
        ));
        assert!(!is_fanout_event(&serde_json::json!({"requestContext": {}})));
    }
}
