//! The room's status, built in one place from what a reconcile reported: conditions in the
//! Kubernetes shape, with `lastTransitionTime` that moves only when a condition's status does.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};
use k8s_openapi::jiff::Timestamp;

use crate::crd::ChatRoomStatus;
use crate::report::{Report, Verdict};

pub const READY: &str = "Ready";

/// The status after a reconcile of `generation` that reported `report`, over the `previous`
/// one. Outputs the report lacks keep their previous values; each condition it speaks of is
/// set, with this generation; the conditions of parts it did not reach stay as they were.
pub fn status_from(
    previous: Option<&ChatRoomStatus>,
    report: &Report,
    generation: Option<i64>,
) -> ChatRoomStatus {
    let mut status = previous.cloned().unwrap_or_default();
    report.outputs.merge_into(&mut status);
    status.observed_generation = generation;
    let conditions = &mut status.conditions;
    for ready in &report.parts {
        let type_ = ready.part.condition_type();
        set_condition(
            conditions,
            type_,
            ConditionStatus::True,
            ready.reason,
            &ready.message,
            generation,
        );
    }
    match &report.verdict {
        Verdict::Ready { reason, message } => {
            set_condition(
                conditions,
                READY,
                ConditionStatus::True,
                reason,
                message,
                generation,
            );
        }
        Verdict::NotReady(failure) => {
            let types = failure.part.map(|part| part.condition_type()).into_iter();
            for type_ in types.chain([READY]) {
                set_condition(
                    conditions,
                    type_,
                    ConditionStatus::False,
                    &failure.reason,
                    &failure.message,
                    generation,
                );
            }
        }
    }
    status
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ConditionStatus {
    True,
    False,
}

impl ConditionStatus {
    fn as_str(self) -> &'static str {
        match self {
            Self::True => "True",
            Self::False => "False",
        }
    }
}

/// Sets condition `type_` in `conditions`, keeping its transition time when its status is
/// unchanged, so that a no-op reconcile writes an identical status.
pub fn set_condition(
    conditions: &mut Vec<Condition>,
    type_: &str,
    status: ConditionStatus,
    reason: &str,
    message: &str,
    observed_generation: Option<i64>,
) {
    let status = status.as_str();
    let existing = conditions.iter().position(|c| c.type_ == type_);
    let last_transition_time = existing
        .map(|i| &conditions[i])
        .filter(|c| c.status == status)
        .map_or_else(
            || Time(Timestamp::now()),
            |c| c.last_transition_time.clone(),
        );
    let condition = Condition {
        type_: type_.to_owned(),
        status: status.to_owned(),
        reason: reason.to_owned(),
        message: message.to_owned(),
        observed_generation,
        last_transition_time,
    };
    match existing {
        Some(i) => conditions[i] = condition,
        None => conditions.push(condition),
    }
}

pub fn is_ready(conditions: &[Condition]) -> bool {
    conditions
        .iter()
        .any(|c| c.type_ == READY && c.status == "True")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn transition_time_changes_only_with_the_status() {
        let mut conditions = Vec::new();
        set_condition(
            &mut conditions,
            READY,
            ConditionStatus::False,
            "Creating",
            "",
            Some(1),
        );
        let first = conditions[0].last_transition_time.clone();
        std::thread::sleep(std::time::Duration::from_millis(5));
        set_condition(
            &mut conditions,
            READY,
            ConditionStatus::False,
            "StillCreating",
            "x",
            Some(2),
        );
        assert_eq!(conditions[0].last_transition_time, first);
        assert_eq!(conditions[0].reason, "StillCreating");
        set_condition(
            &mut conditions,
            READY,
            ConditionStatus::True,
            "Serving",
            "",
            Some(2),
        );
        assert_ne!(conditions[0].last_transition_time, first);
        assert_eq!(conditions.len(), 1);
        assert!(is_ready(&conditions));
    }
}
