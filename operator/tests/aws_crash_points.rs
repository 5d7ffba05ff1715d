//! Crash at every point of a fresh apply of a room that keeps history: after the k-th mutating
//! AWS call has happened at AWS but before the operator learned of it. The next apply must
//! converge to exactly one of each resource, and a delete from the half-built state must leave
//! nothing.
//!
//! Needs the `crash-points` feature (scripts/test.sh runs with --all-features) and moto.

mod aws_support;

use aws_support::{Inventory, provider};
use chatroom_operator::crd::{ChatRoom, HistorySpec};

fn room(test: &str) -> ChatRoom {
    let mut room = aws_support::room(test);
    room.spec.history = Some(HistorySpec {
        messages: 10,
        retention: "24h".into(),
    });
    room
}

#[tokio::test]
#[ignore = "needs moto; run through scripts/test.sh"]
async fn every_crash_point_recovers_without_duplicates_or_orphans() {
    let provider = provider().await;
    let baseline = room("crash-baseline");
    assert!(provider.converge(&baseline).await.failure().is_none());
    let mutating_calls = provider.calls().mutating().len();
    provider.delete(&baseline).await.unwrap();
    assert!(
        mutating_calls >= 10,
        "a fresh apply makes {mutating_calls} mutating calls"
    );

    for k in 1..=mutating_calls {
        for then_delete in [false, true] {
            let room = room(&format!("crash{k}{}", if then_delete { "d" } else { "a" }));
            provider.calls().clear();
            provider.calls().crash_after(Some(k));
            let crashed = provider.converge(&room).await;
            provider.calls().crash_after(None);
            assert!(
                crashed.failure().is_some(),
                "crash point {k} interrupted the apply"
            );
            assert_eq!(
                provider.calls().mutating().len(),
                k,
                "the apply stopped at call {k}"
            );
            if k == 1 {
                assert!(
                    Inventory::of(&room).await.table,
                    "the crashed CreateTable happened at AWS"
                );
            }

            if then_delete {
                provider.delete(&room).await.unwrap();
                let left = Inventory::of(&room).await;
                assert!(
                    left.is_empty(),
                    "after a crash at call {k}, delete left {left:#?}"
                );
            } else {
                let again = provider.converge(&room).await;
                assert!(
                    again.failure().is_none(),
                    "crash point {k}: {:?}",
                    again.failure()
                );
                Inventory::of(&room)
                    .await
                    .assert_complete_as("onMessage", true);
                provider.delete(&room).await.unwrap();
                assert!(Inventory::of(&room).await.is_empty());
            }
        }
    }
}
