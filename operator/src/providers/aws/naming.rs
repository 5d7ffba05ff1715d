//! Deterministic AWS names for a room's resources, so a restarted operator finds what it made
//! before. Every name ends in a hash of the exact cluster, namespace and name: two clusters'
//! rooms `default/lobby` never share a name, and `a-b`/`c` and `a`/`b-c` would otherwise both
//! be `a-b-c`. The readable part is the namespace and name; the cluster is only in the hash.

use chatroom_handlers::fnv::fnv1a;

/// Names of one room's resources.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ResourceNames {
    /// DynamoDB: 3–255 of `[A-Za-z0-9_.-]`.
    pub table: String,
    /// The room's message history, when it keeps one: the table's name with `-history`.
    pub history_table: String,
    /// The room's channel subscriptions, when it has channels: the table's name with `-channels`.
    pub channel_table: String,
    /// IAM role: 1–64 of `[A-Za-z0-9+=,.@_-]`.
    pub role: String,
    /// Lambda: 1–64 of `[A-Za-z0-9_-]`.
    pub function: String,
    /// API Gateway API name: 1–128 characters.
    pub api: String,
}

pub const INLINE_POLICY: &str = "chatroom-room";
/// The managed policy that bounds every role the operator creates (docs/permissions-boundary.json).
pub const BOUNDARY_POLICY: &str = "chatroom-room-boundary";
const PREFIX: &str = "chatroom";

impl ResourceNames {
    pub fn for_room(cluster: &str, namespace: &str, name: &str) -> Self {
        let hash = fnv1a(&format!("{cluster}/{namespace}/{name}"));
        let suffix = format!("{hash:016x}");
        let suffix = &suffix[..10];
        let base = format!("{PREFIX}-{namespace}-{name}");
        Self {
            table: fit(&base, suffix, 255),
            history_table: fit(&base, &format!("{suffix}-history"), 255),
            channel_table: fit(&base, &format!("{suffix}-channels"), 255),
            role: fit(&base, suffix, 64),
            // Lambda names allow no dots; Kubernetes names may have them.
            function: fit(&base.replace('.', "_"), suffix, 64),
            api: fit(&base, suffix, 128),
        }
    }

    /// The function's CloudWatch log group, where Lambda writes its logs.
    pub fn log_group(&self) -> String {
        format!("/aws/lambda/{}", self.function)
    }

    /// The stage's access log group (`spec.accessLog`).
    pub fn access_log_group(&self) -> String {
        format!("/aws/apigateway/{}", self.api)
    }
}

/// `base-suffix`, with `base` cut so the whole fits in `max` characters.
fn fit(base: &str, suffix: &str, max: usize) -> String {
    let room = max - suffix.len() - 1;
    let base: String = base.chars().take(room).collect();
    format!("{}-{suffix}", base.trim_end_matches(['-', '.', '_']))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_stable_and_readable() {
        let names = ResourceNames::for_room("prod", "default", "lobby");
        assert_eq!(names, ResourceNames::for_room("prod", "default", "lobby"));
        assert!(
            names.table.starts_with("chatroom-default-lobby-"),
            "{}",
            names.table
        );
        assert_eq!(names.log_group(), format!("/aws/lambda/{}", names.function));
        assert_eq!(names.history_table, format!("{}-history", names.table));
        assert_eq!(names.channel_table, format!("{}-channels", names.table));
    }

    #[test]
    fn two_clusters_name_the_same_room_apart() {
        let prod = ResourceNames::for_room("prod", "default", "lobby");
        let staging = ResourceNames::for_room("staging", "default", "lobby");
        assert_ne!(prod.table, staging.table);
        assert_ne!(prod.role, staging.role);
        assert_ne!(prod.function, staging.function);
        assert_ne!(prod.api, staging.api);
        assert!(staging.table.starts_with("chatroom-default-lobby-"));
    }

    #[test]
    fn names_that_would_read_alike_differ() {
        assert_ne!(
            ResourceNames::for_room("prod", "a-b", "c"),
            ResourceNames::for_room("prod", "a", "b-c")
        );
    }

    #[test]
    fn long_names_fit_each_service_and_stay_unique() {
        let namespace = "n".repeat(63);
        let long = format!("{}.{}", "x".repeat(120), "y".repeat(120));
        let other = format!("{}.{}", "x".repeat(120), "z".repeat(120));
        let names = ResourceNames::for_room("prod", &namespace, &long);
        assert!(
            names.table.len() <= 255
                && names.history_table.len() <= 255
                && names.role.len() <= 64
                && names.function.len() <= 64
                && names.api.len() <= 128
        );
        assert!(
            names
                .function
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_'),
            "{}",
            names.function
        );
        assert!(
            names
                .role
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || "+=,.@_-".contains(c))
        );
        let others = ResourceNames::for_room("prod", &namespace, &other);
        assert_ne!(
            names.role, others.role,
            "truncated names keep the hash that tells them apart"
        );
    }
}
