//! The vocabulary of every resource's `diff`: what separates what exists in AWS from what the
//! room needs, as data that `act` carries out and tests read without any AWS at all.

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
            Change::Update(_) | Change::Replace(_) | Change::Remove => Outcome::Updated,
            Change::Conflict(_) => Outcome::Unchanged,
        })
        .max()
        .unwrap_or(Outcome::Unchanged)
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
