//! Tags that mark what the operator owns, so it can find, and never take, a resource.

use std::collections::HashMap;

use super::Tags;
use crate::crd::ChatRoom;

pub const NAMESPACE: &str = "chatroom.dev/namespace";
pub const NAME: &str = "chatroom.dev/name";
pub const UID: &str = "chatroom.dev/uid";
pub const CLUSTER: &str = "chatroom.dev/cluster";
pub const MANAGED_BY: &str = "chatroom.dev/managed-by";
pub const OPERATOR: &str = "chatroom-operator";

/// The room's tags: ownership (namespace, name, UID when there is one, cluster), then
/// `spec.tags`, which validation keeps out of the `chatroom.dev/` prefix.
pub fn room_tags(room: &ChatRoom, cluster: &str) -> Tags {
    let mut tags = room.spec.tags.clone();
    tags.insert(
        NAMESPACE.into(),
        room.metadata
            .namespace
            .clone()
            .unwrap_or_else(|| "default".into()),
    );
    tags.insert(NAME.into(), room.metadata.name.clone().unwrap_or_default());
    if let Some(uid) = &room.metadata.uid {
        tags.insert(UID.into(), uid.clone());
    }
    tags.insert(CLUSTER.into(), cluster.to_owned());
    tags.insert(MANAGED_BY.into(), OPERATOR.into());
    tags
}

/// Whether `found` tags say the resource belongs to this room.
pub fn owned_by(found: &HashMap<String, String>, wanted: &Tags) -> bool {
    [NAMESPACE, NAME, CLUSTER]
        .iter()
        .all(|key| found.get(*key) == wanted.get(*key))
}
