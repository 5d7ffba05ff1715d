use std::num::NonZeroU32;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use governor::{DefaultDirectRateLimiter, Quota, RateLimiter};

use super::connections_api::{ConnectionsApi, PostError};
use super::fanout::{Workers, pages};
use crate::broadcast::Fanout;
use crate::contract::FANOUT_PAGE_RECIPIENTS;
use crate::sender::{HandOff, SendError, Sender};
use crate::store::Recipient;

/// Posts to connections through the API Gateway Management API (`@connections`), at most at
/// its pace; past a page of recipients it hands a broadcast to workers, when it has them.
#[derive(Clone, Debug)]
pub struct ManagementApiSender {
    api: ConnectionsApi,
    endpoint: String,
    pace: Option<Arc<DefaultDirectRateLimiter>>,
    posts_per_second: u32,
    workers: Option<Workers>,
}

impl ManagementApiSender {
    /// A sender for the API at `endpoint` (`https://{apiId}.execute-api.{region}.amazonaws.com/{stage}`).
    pub fn new(api: ConnectionsApi, endpoint: &str) -> Self {
        Self {
            api,
            endpoint: endpoint.to_owned(),
            pace: None,
            posts_per_second: 0,
            workers: None,
        }
    }

    /// Starts at most `posts_per_second` posts a second (a twentieth of a second's worth at
    /// once).
    pub fn paced(mut self, posts_per_second: f64) -> Self {
        self.pace = quota(posts_per_second).map(|q| Arc::new(RateLimiter::direct(q)));
        self.posts_per_second = posts_per_second.round() as u32;
        self
    }

    /// Hands broadcasts past one page to `workers`, at most `posts_per_second` in all.
    pub fn with_workers(mut self, workers: Workers) -> Self {
        self.workers = Some(workers);
        self
    }

    pub fn endpoint(&self) -> &str {
        &self.endpoint
    }
}

fn quota(posts_per_second: f64) -> Option<Quota> {
    if !(posts_per_second.is_finite() && posts_per_second > 0.0) {
        return None;
    }
    let burst = NonZeroU32::new(((posts_per_second / 20.0).ceil() as u32).max(1))?;
    Quota::with_period(Duration::from_secs_f64(1.0 / posts_per_second))
        .map(|q| q.allow_burst(burst))
}

/// The management endpoint for an event: `CALLBACK_URL` when set (custom domains, local
/// testing; with or without its `/@connections` suffix), else `https://{domainName}/{stage}`.
pub fn management_endpoint(callback_url: Option<&str>, domain_name: &str, stage: &str) -> String {
    match callback_url {
        Some(url) => url
            .trim_end_matches('/')
            .trim_end_matches("/@connections")
            .to_owned(),
        None => format!("https://{domain_name}/{stage}"),
    }
}

impl Sender for ManagementApiSender {
    async fn post(&self, connection_id: &str, payload: Bytes) -> Result<(), SendError> {
        if let Some(pace) = &self.pace {
            pace.until_ready().await;
        }
        match self.api.post(&self.endpoint, connection_id, payload).await {
            Ok(()) => Ok(()),
            Err(PostError::Gone) => Err(SendError::Gone),
            Err(error) => Err(SendError::Failed(error.to_string())),
        }
    }

    async fn hand_off(
        &self,
        recipients: &[Recipient],
        payload: &Bytes,
        fanout: &Fanout,
    ) -> Option<HandOff> {
        let workers = self.workers.as_ref()?;
        if recipients.len() <= FANOUT_PAGE_RECIPIENTS {
            return None;
        }
        // Chat frames are JSON text; anything else is posted here.
        let payload = String::from_utf8(payload.to_vec()).ok()?;
        let pages = pages(
            recipients,
            payload,
            &self.endpoint,
            fanout.message,
            self.posts_per_second.max(1),
            workers.posts_per_second(),
            fanout.settled_before_ms,
        );
        let handed = pages.len();
        let refused = workers.invoke_all(pages).await;
        let left: Vec<Recipient> = refused
            .iter()
            .flat_map(|page| &page.recipients)
            .map(|id| Recipient::unnamed(id.as_str()))
            .collect();
        Some(HandOff {
            pages: handed - refused.len(),
            left,
        })
    }
}
