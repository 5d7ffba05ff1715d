//! What one reconcile learned about a room, typed: the parts that are ready, the failure that
//! stopped it, what it changed, and what clients need to reach the room. Providers produce a
//! [`Report`]; [`crate::status::status_from`] turns it into the status every driver writes.

use std::fmt;

use crate::crd::ChatRoomStatus;

/// A part of a room with a condition of its own.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Part {
    Table,
    Function,
    Api,
}

impl Part {
    pub fn condition_type(self) -> &'static str {
        match self {
            Self::Table => "TableReady",
            Self::Function => "FunctionReady",
            Self::Api => "ApiReady",
        }
    }
}

/// A part that converged, with the condition reason and message that say so.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PartReady {
    pub part: Part,
    pub reason: &'static str,
    pub message: String,
}

/// Why a room is not ready, and whether waiting could help.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Failure {
    pub reason: String,
    pub message: String,
    /// Only a change to the spec, the operator's files or its permissions fixes it.
    pub permanent: bool,
    /// The part whose condition goes False with `Ready`; none for a spec that breaks a rule.
    pub part: Option<Part>,
}

impl Failure {
    pub fn invalid_spec(message: String) -> Self {
        Self {
            reason: "InvalidSpec".into(),
            message,
            permanent: true,
            part: None,
        }
    }

    /// The room's Secret is missing or unreadable: retried, as it may yet be created.
    pub fn secret_unavailable(error: &crate::secrets::SecretError) -> Self {
        Self {
            reason: "SecretUnavailable".into(),
            message: error.to_string(),
            permanent: false,
            part: None,
        }
    }
}

/// What a step did to its resource.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Outcome {
    Unchanged,
    Updated,
    Created,
}

/// A resource that one reconcile created or changed, e.g. `table Created`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Applied {
    /// The resource, as a lowercase word (`table`, `routes`, …).
    pub resource: &'static str,
    pub outcome: Outcome,
}

impl fmt::Display for Applied {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {:?}", self.resource, self.outcome)
    }
}

/// What clients and people need to reach the room; `None` leaves the status's value as it was.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Outputs {
    pub websocket_url: Option<String>,
    pub callback_url: Option<String>,
    pub api_id: Option<String>,
    pub stage: Option<String>,
    pub table_name: Option<String>,
    /// `Some(None)`: the room keeps no history (any table it had is gone); `None`: not
    /// reached.
    pub history_table_name: Option<Option<String>>,
    /// The same for the channel table.
    pub channel_table_name: Option<Option<String>>,
    pub function_name: Option<String>,
    pub function_arn: Option<String>,
    pub role_arn: Option<String>,
    /// `Some(None)`: the room has no custom domain (any it had is gone); `None`: not reached.
    /// The name, then the DNS target.
    pub domain: Option<Option<(String, String)>>,
}

impl Outputs {
    pub fn merge_into(&self, status: &mut ChatRoomStatus) {
        let fields = [
            (&self.websocket_url, &mut status.websocket_url),
            (&self.callback_url, &mut status.callback_url),
            (&self.api_id, &mut status.api_id),
            (&self.stage, &mut status.stage),
            (&self.table_name, &mut status.table_name),
            (&self.function_name, &mut status.function_name),
            (&self.function_arn, &mut status.function_arn),
            (&self.role_arn, &mut status.role_arn),
        ];
        for (new, current) in fields {
            if new.is_some() {
                current.clone_from(new);
            }
        }
        if let Some(history) = &self.history_table_name {
            status.history_table_name.clone_from(history);
        }
        if let Some(channels) = &self.channel_table_name {
            status.channel_table_name.clone_from(channels);
        }
        if let Some(domain) = &self.domain {
            status.domain_name = domain.as_ref().map(|(name, _)| name.clone());
            status.domain_target = domain.as_ref().map(|(_, target)| target.clone());
        }
    }
}

/// Whether the room as a whole is ready: the `Ready` condition.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Verdict {
    Ready {
        reason: &'static str,
        message: String,
    },
    NotReady(Failure),
}

/// Everything a reconcile reports about one room.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Report {
    pub outputs: Outputs,
    /// Parts that converged, in the order they did.
    pub parts: Vec<PartReady>,
    pub verdict: Verdict,
    /// What this reconcile created or changed; empty when nothing.
    pub applied: Vec<Applied>,
}

impl Report {
    /// A reconcile that stopped before anything was reached.
    pub fn failed(failure: Failure) -> Self {
        Self {
            outputs: Outputs::default(),
            parts: Vec::new(),
            verdict: Verdict::NotReady(failure),
            applied: Vec::new(),
        }
    }

    pub fn failure(&self) -> Option<&Failure> {
        match &self.verdict {
            Verdict::Ready { .. } => None,
            Verdict::NotReady(failure) => Some(failure),
        }
    }
}
