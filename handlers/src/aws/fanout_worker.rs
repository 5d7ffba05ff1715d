//! An invocation that posts one page (or the rest of one) of a large broadcast, at its share
//! of the room's budget; near its deadline it hands what is left to a fresh invocation.

use std::time::{Duration, SystemTime};

use bytes::Bytes;

use super::fanout::{FanoutPage, HAND_ON_MARGIN};
use super::function::Function;
use super::management_sender::{ManagementApiSender, management_endpoint};
use crate::broadcast::{BroadcastReport, Fanout, broadcast};
use crate::store::{Recipient, StoreError};

/// What one part's invocation did.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct PartReport {
    /// The part was handled before (Lambda delivered it again): nothing was posted.
    pub skipped: bool,
    pub delivered: usize,
    pub gone: usize,
    pub failed: usize,
    /// The rest of the page went to another invocation, from this offset.
    pub handed_on_at: Option<u32>,
}

impl Function {
    /// Posts `part` unless it was handled before, then records it.
    pub async fn fan_out(
        &self,
        part: &FanoutPage,
        deadline: SystemTime,
    ) -> Result<PartReport, StoreError> {
        let segment = part.segment();
        if !self.posts_to(&part.endpoint) {
            // Whoever may invoke the function could name any endpoint; it would get this
            // role's signed requests.
            tracing::error!(endpoint = %part.endpoint, "a part for an endpoint not this room's, refused");
            return Ok(PartReport {
                failed: part.recipients.len(),
                ..PartReport::default()
            });
        }
        if self.store.fanout_handled(&part.message, &segment).await? {
            tracing::info!(page = part.page, %segment, "part already handled");
            return Ok(PartReport {
                skipped: true,
                ..PartReport::default()
            });
        }
        let sender = ManagementApiSender::new(self.connections.clone(), &part.endpoint)
            .paced(part.posts_per_second);
        let payload = Bytes::from(part.payload.clone());
        let fanout = Fanout {
            concurrency: self.config.chat.broadcast_concurrency,
            settled_before_ms: part.settled_before_ms,
            message: 0,
        };
        // About a second of posts at a time, so the deadline is looked at every second.
        let chunk = (part.posts_per_second.ceil() as usize).clamp(1, part.recipients.len().max(1));
        let mut report = PartReport::default();
        let mut posted = 0;
        while posted < part.recipients.len() {
            let ids = &part.recipients[posted..(posted + chunk).min(part.recipients.len())];
            let needs = Duration::from_secs_f64(ids.len() as f64 / part.posts_per_second.max(1.0));
            // Handed on only after some progress: an invocation too short for one second of
            // posts would otherwise hand the same part on for ever.
            if posted > 0
                && SystemTime::now() + needs + HAND_ON_MARGIN > deadline
                && let Some(offset) = self.hand_on(part, posted).await
            {
                report.handed_on_at = Some(offset);
                break;
            }
            let recipients: Vec<Recipient> = ids
                .iter()
                .map(|id| Recipient::unnamed(id.as_str()))
                .collect();
            let chunk_report: BroadcastReport =
                broadcast(&self.store, &sender, &recipients, payload.clone(), fanout).await;
            report.delivered += chunk_report.delivered;
            report.gone += chunk_report.gone.len();
            report.failed += chunk_report.failed.len();
            posted += ids.len();
        }
        self.store.fanout_mark(&part.message, &segment).await?;
        tracing::info!(
            page = part.page,
            %segment,
            delivered = report.delivered,
            gone = report.gone,
            failed = report.failed,
            handed_on_at = ?report.handed_on_at,
            "part posted"
        );
        Ok(report)
    }

    /// Whether `endpoint` is one this function posts to itself: its `CALLBACK_URL`, or an
    /// execute-api stage in its own Region.
    fn posts_to(&self, endpoint: &str) -> bool {
        if let Some(callback) = &self.config.callback_url {
            return endpoint == management_endpoint(Some(callback), "", "");
        }
        let region = self.sdk.region().map_or("", |r| r.as_ref());
        let Some((host, stage)) = endpoint
            .strip_prefix("https://")
            .and_then(|rest| rest.split_once('/'))
        else {
            return false;
        };
        let execute_api = [".amazonaws.com", ".amazonaws.com.cn"]
            .iter()
            .any(|suffix| host.ends_with(&format!(".execute-api.{region}{suffix}")));
        execute_api && !region.is_empty() && !stage.is_empty() && !stage.contains('/')
    }

    /// Hands the part's recipients from `posted` on to a fresh invocation: its offset, or
    /// `None` when it could not (this one then goes on, and may run out of time).
    async fn hand_on(&self, part: &FanoutPage, posted: usize) -> Option<u32> {
        let workers = self.workers.as_ref()?;
        let offset = part.offset + u32::try_from(posted).ok()?;
        let rest = FanoutPage {
            offset,
            recipients: part.recipients[posted..].to_vec(),
            ..part.clone()
        };
        match workers.invoke(&rest).await {
            Ok(()) => Some(offset),
            Err(error) => {
                tracing::error!(%error, "could not hand the rest of a page on");
                None
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use aws_config::{BehaviorVersion, Region, SdkConfig};

    use super::*;
    use crate::aws::FunctionConfig;

    fn function(callback: Option<&str>) -> Function {
        let sdk = SdkConfig::builder()
            .behavior_version(BehaviorVersion::latest())
            .region(Region::new("eu-west-1"))
            .build();
        let config = FunctionConfig::from_lookup(|name| match name {
            "TABLE_NAME" => Some("t".to_owned()),
            "CALLBACK_URL" => callback.map(str::to_owned),
            _ => None,
        })
        .unwrap();
        Function::new(&sdk, config).unwrap()
    }

    #[test]
    fn a_part_is_posted_only_to_an_endpoint_of_this_room() {
        let on_aws = function(None);
        assert!(on_aws.posts_to("https://abc123.execute-api.eu-west-1.amazonaws.com/dev"));
        for elsewhere in [
            "https://abc123.execute-api.us-east-1.amazonaws.com/dev",
            "http://abc123.execute-api.eu-west-1.amazonaws.com/dev",
            "https://evil.example.com/dev",
            "https://abc123.execute-api.eu-west-1.amazonaws.com.evil.example.com/dev",
            "https://abc123.execute-api.eu-west-1.amazonaws.com/dev/more",
        ] {
            assert!(!on_aws.posts_to(elsewhere), "{elsewhere}");
        }
        let behind_a_domain = function(Some(
            "https://abc123.execute-api.eu-west-1.amazonaws.com/prod/@connections",
        ));
        assert!(
            behind_a_domain.posts_to("https://abc123.execute-api.eu-west-1.amazonaws.com/prod")
        );
        assert!(
            !behind_a_domain.posts_to("https://other.execute-api.eu-west-1.amazonaws.com/prod")
        );
    }
}
