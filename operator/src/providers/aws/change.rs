//! The vocabulary of every resource's `diff`: what separates what exists in AWS from what the
//! room needs, as data that `act` carries out and tests read without any AWS at all.

use std::collections::HashMap;

use super::Tags;
use super::tags::{Ownership, ownership};
use crate::report::Outcome;

/// One difference between an observed resource and the desired one. `F` names the resource's
/// fields that can drift.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Change<F> {
    /// Nothing exists: create it.
    Create,
    /// It exists and is the room's, but this field differs: change it in place.
    Update(F),
    /// It exists, but this field cannot change in place: remove it and create it anew.
    Replace(F),
    /// It exists, this cluster's room of the same namespace and name made it, but another
    /// incarnation of that room (another UID): take it over by retagging it.
    Adopt,
    /// It exists and belongs to someone else: touch nothing. Says whose it is.
    Conflict(String),
    /// It is no longer wanted (a route or stage the spec dropped): delete it.
    Remove,
}

/// What carrying out `changes` does to the resource, for Events and progress lines.
pub fn outcome<'a, F: 'a>(changes: impl IntoIterator<Item = &'a Change<F>>) -> Outcome {
    changes
        .into_iter()
        .map(|change| match change {
            Change::Create => Outcome::Created,
            Change::Update(_) | Change::Replace(_) | Change::Adopt | Change::Remove => {
                Outcome::Updated
            }
            Change::Conflict(_) => Outcome::Unchanged,
        })
        .max()
        .unwrap_or(Outcome::Unchanged)
}

/// How a diff of an existing resource starts: with nothing, with `Adopt`, or (as `Err`) with
/// only a `Conflict` that says whose `resource` is, after which nothing else may be done.
pub fn claim<F>(
    found: &HashMap<String, String>,
    wanted: &Tags,
    resource: &str,
) -> Result<Vec<Change<F>>, Vec<Change<F>>> {
    match ownership(found, wanted) {
        Ownership::Ours => Ok(Vec::new()),
        Ownership::Adoptable => Ok(vec![Change::Adopt]),
        Ownership::Foreign(whose) => Err(vec![Change::Conflict(format!(
            "{resource} exists with the room's name but belongs to {whose}; it is left alone"
        ))]),
    }
}

/// What deleting one of a room's resources came to.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Removal {
    Deleted,
    /// There was nothing to delete.
    Absent,
    /// A resource with the room's name belongs to someone else; it was left alone.
    Foreign(String),
}

impl Removal {
    /// Why a resource must not be deleted: nothing is there (`found` is `None`), or it is
    /// someone else's. `None` when it is the room's own to delete.
    pub fn skip_reason(found: Option<&HashMap<String, String>>, wanted: &Tags) -> Option<Self> {
        match found.map(|tags| ownership(tags, wanted)) {
            None => Some(Self::Absent),
            Some(Ownership::Foreign(whose)) => Some(Self::Foreign(whose)),
            Some(Ownership::Ours | Ownership::Adoptable) => None,
        }
    }
}

/// What a step made of its resource: the output later steps need, and what it did.
#[derive(Debug)]
pub struct Converged<T> {
    pub output: T,
    pub outcome: Outcome,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_creation_outranks_an_update_and_nothing_is_unchanged() {
        assert_eq!(outcome::<()>(&[]), Outcome::Unchanged);
        assert_eq!(
            outcome(&[Change::Update(()), Change::Create]),
            Outcome::Created
        );
        assert_eq!(outcome(&[Change::Remove::<()>]), Outcome::Updated);
    }
}
