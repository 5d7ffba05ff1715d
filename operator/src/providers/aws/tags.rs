//! Tags that mark what the operator owns, so that it finds its own resources and never takes,
//! changes or deletes another owner's.
//!
//! # Guarantees
//! - Every resource the operator creates carries [`room_tags`]: the cluster, namespace, name,
//!   the room's UID when it has one, and `managed-by`.
//! - Before a resource is adopted, updated or deleted, its tags are read and judged by
//!   [`ownership`]; a foreign resource is never touched.
//!
//! # Assumptions
//! - Nobody else writes `chatroom.dev/` tags: validation keeps them out of `spec.tags`.
//!
//! # Caveats
//! - The UID tells incarnations of a room apart. A resource of this cluster's room with
//!   another UID (a table a deleted room retained, say) is adopted: retagged with the new UID.

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

/// Whose a resource with the room's name is, by its tags.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Ownership {
    Ours,
    /// This cluster's room of the same namespace and name, but not this incarnation of it.
    Adoptable,
    /// Someone else's: says whose.
    Foreign(String),
}

pub fn ownership(found: &HashMap<String, String>, wanted: &Tags) -> Ownership {
    let tag = |key: &str| found.get(key).map(String::as_str);
    if tag(MANAGED_BY) != Some(OPERATOR) {
        return Ownership::Foreign("an owner outside chatroom-operator (no managed-by tag)".into());
    }
    let same = |key: &str| tag(key) == wanted.get(key).map(String::as_str);
    if !(same(CLUSTER) && same(NAMESPACE) && same(NAME)) {
        return Ownership::Foreign(format!(
            "cluster {}, room {}/{}",
            tag(CLUSTER).unwrap_or("?"),
            tag(NAMESPACE).unwrap_or("?"),
            tag(NAME).unwrap_or("?")
        ));
    }
    match wanted.get(UID) {
        Some(uid) if tag(UID) != Some(uid.as_str()) => Ownership::Adoptable,
        _ => Ownership::Ours,
    }
}

/// Tags as a map, from any of the SDKs' shapes.
pub fn tag_map<'a>(pairs: impl IntoIterator<Item = (&'a str, &'a str)>) -> HashMap<String, String> {
    pairs
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect()
}

/// A room's tags as the operator of cluster `prod` gives `default/lobby`, for tests.
#[cfg(test)]
pub fn lobby_tags() -> Tags {
    Tags::from([
        (NAMESPACE.into(), "default".into()),
        (NAME.into(), "lobby".into()),
        (CLUSTER.into(), "prod".into()),
        (MANAGED_BY.into(), OPERATOR.into()),
    ])
}

#[cfg(test)]
mod tests {
    use super::*;

    fn wanted(uid: Option<&str>) -> Tags {
        let mut tags = Tags::from([
            (NAMESPACE.into(), "default".into()),
            (NAME.into(), "lobby".into()),
            (CLUSTER.into(), "prod".into()),
            (MANAGED_BY.into(), OPERATOR.into()),
        ]);
        if let Some(uid) = uid {
            tags.insert(UID.into(), uid.into());
        }
        tags
    }

    fn found(tags: &Tags) -> HashMap<String, String> {
        tags.clone().into_iter().collect()
    }

    #[test]
    fn the_rooms_own_tags_are_ours_and_another_incarnation_is_adoptable() {
        assert_eq!(
            ownership(&found(&wanted(Some("u1"))), &wanted(Some("u1"))),
            Ownership::Ours
        );
        assert_eq!(
            ownership(&found(&wanted(None)), &wanted(None)),
            Ownership::Ours
        );
        assert_eq!(
            ownership(&found(&wanted(Some("u0"))), &wanted(Some("u1"))),
            Ownership::Adoptable
        );
        assert_eq!(
            ownership(&found(&wanted(None)), &wanted(Some("u1"))),
            Ownership::Adoptable,
            "made by `apply`, now reconciled by the controller"
        );
    }

    #[test]
    fn another_cluster_or_room_or_no_tags_is_foreign() {
        let mut other_cluster = found(&wanted(None));
        other_cluster.insert(CLUSTER.into(), "staging".into());
        let Ownership::Foreign(whose) = ownership(&other_cluster, &wanted(None)) else {
            panic!("another cluster's resource was taken")
        };
        assert_eq!(whose, "cluster staging, room default/lobby");
        assert!(matches!(
            ownership(&HashMap::new(), &wanted(None)),
            Ownership::Foreign(_)
        ));
    }
}
