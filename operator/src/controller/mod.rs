//! `chatroom-operator run`: the Kubernetes controller. kube-runtime's `Controller` drives
//! [`reconcile_room`] for every ChatRoom; the finalizer helper splits it into apply and cleanup.

mod metrics;
mod schedule;
pub(crate) mod server;

use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use kube::api::{Api, Patch, PatchParams};
use kube::runtime::controller::Action;
use kube::runtime::events::{Event, EventType, Recorder};
use kube::runtime::finalizer::{Event as Finalized, finalizer};
use kube::runtime::reflector::Store;
use kube::{Client, Resource, ResourceExt};

use crate::crd::{ChatRoom, ChatRoomSpec};
use crate::reconcile::{self, Provider};
use crate::report::Outcome;
use crate::status::is_ready;
pub use metrics::Metrics;
pub use schedule::{MAX_BACKOFF, RESYNC_JITTER};
use schedule::{Schedule, spread, steady_state_floor};

pub const FINALIZER: &str = "chatroom.dev/cleanup";
pub const FIELD_MANAGER: &str = "chatroom-operator";

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("writing the status of {room}: {source}")]
    Status { room: String, source: kube::Error },
    #[error("{room} is not ready yet: {message}")]
    NotReady {
        room: String,
        reason: String,
        message: String,
    },
    #[error("deleting the resources of {room}: {message}")]
    Cleanup { room: String, message: String },
    #[error(transparent)]
    Finalizer(#[from] Box<kube::runtime::finalizer::Error<Error>>),
}

impl Error {
    pub fn reason(&self) -> String {
        match self {
            Self::Status { .. } => "StatusWriteFailed".into(),
            Self::NotReady { reason, .. } => reason.clone(),
            Self::Cleanup { .. } => "CleanupFailed".into(),
            Self::Finalizer(_) => "FinalizerFailed".into(),
        }
    }
}

/// What every reconcile shares.
pub struct Context {
    pub client: Client,
    pub provider: Provider,
    pub recorder: Recorder,
    pub metrics: Metrics,
    /// How often a healthy room is checked for drift.
    pub resync: Duration,
    /// How far each resync is spread either way, as a fraction of it.
    resync_jitter: f64,
    schedule: Schedule,
    /// The rooms the controller watches, once it runs: the fleet's size sets the resync floor.
    watched: OnceLock<Store<ChatRoom>>,
}

impl Context {
    pub fn new(
        client: Client,
        provider: Provider,
        recorder: Recorder,
        metrics: Metrics,
        resync: Duration,
    ) -> Self {
        if let Provider::Aws(aws) = &provider {
            let counting = metrics.clone();
            aws.calls()
                .observe(Arc::new(move |call| counting.aws_call(call)));
        }
        Self {
            client,
            provider,
            recorder,
            metrics,
            resync,
            resync_jitter: RESYNC_JITTER,
            schedule: Schedule::default(),
            watched: OnceLock::new(),
        }
    }

    /// Spreads each resync by up to `fraction` of it either way (0 for none).
    pub fn with_resync_jitter(mut self, fraction: f64) -> Self {
        self.resync_jitter = fraction.clamp(0.0, 0.5);
        self
    }

    /// Hands over the controller's cache of rooms, so that a resync is planned for the whole
    /// fleet and not only for the rooms reconciled so far.
    pub fn watch(&self, rooms: Store<ChatRoom>) {
        // Only the first controller's cache counts; there is only ever one.
        let _ = self.watched.set(rooms);
    }

    /// Waits until the controller's first list of rooms is complete: the rooms reconciled
    /// while it is still arriving would otherwise plan their resync for a smaller fleet.
    async fn fleet_listed(&self) {
        if let Some(rooms) = self.watched.get() {
            // The writer goes only with the controller, and with it every reconcile.
            let _ = rooms.wait_until_ready().await;
        }
    }

    /// What one steady-state reconcile of every room costs the AWS provider's scarcest rate:
    /// each room as the watch has it, by what its spec turns on; rooms reconciled but not (yet)
    /// in the store count as plain ones.
    fn fleet_cost(&self, aws: &crate::providers::aws::AwsProvider) -> Duration {
        let rooms = self.watched.get().map(Store::state).unwrap_or_default();
        let unseen = self.metrics.room_count().saturating_sub(rooms.len());
        let plain = ChatRoomSpec::default();
        let fleet = rooms
            .iter()
            .map(|room| &room.spec)
            .chain(std::iter::repeat_n(&plain, unseen));
        aws.steady_state_cost(fleet)
    }

    /// The next resync, spread so that rooms created together (or all of them, after the
    /// operator starts) do not reconcile in lock-step ever after, and never so short that the
    /// fleet's steady state would take more than half of what the provider's rate limits
    /// allow: the other half stays for rooms being created or changed.
    fn next_resync(&self) -> Duration {
        let floor = match &self.provider {
            Provider::Aws(aws) => steady_state_floor(self.fleet_cost(aws)),
            Provider::Local(_) => Duration::ZERO,
        };
        let resync = self.resync.max(floor);
        self.metrics.set_resync(resync);
        spread(resync, self.resync_jitter, rand::random::<f64>())
    }

    /// Notes a room settled at its generation (ready, or failed for good) until its resync.
    fn settled(&self, room: &ChatRoom) -> Action {
        let resync = self.next_resync();
        self.schedule
            .converged(&key(room), room.metadata.generation, resync);
        Action::requeue(resync)
    }
}

fn key(room: &ChatRoom) -> String {
    format!(
        "{}/{}",
        room.namespace().unwrap_or_default(),
        room.name_any()
    )
}

pub async fn reconcile_room(room: Arc<ChatRoom>, ctx: Arc<Context>) -> Result<Action, Error> {
    let started = Instant::now();
    let api: Api<ChatRoom> = Api::namespaced(
        ctx.client.clone(),
        &room.namespace().unwrap_or_else(|| "default".into()),
    );
    let result = finalizer(&api, FINALIZER, room, |event| async {
        match event {
            Finalized::Apply(room) => apply(room, &ctx, &api).await,
            Finalized::Cleanup(room) => cleanup(room, &ctx).await,
        }
    })
    .await
    .map_err(|e| Error::Finalizer(Box::new(e)));
    ctx.metrics.reconciled(started.elapsed());
    result
}

async fn apply(room: Arc<ChatRoom>, ctx: &Context, api: &Api<ChatRoom>) -> Result<Action, Error> {
    let who = key(&room);
    // A room settled at this generation is not converged again before its resync, however
    // many watch events arrive: its own status writes would otherwise cost a full reconcile.
    if let Some(wait) = ctx.schedule.not_due(&who, room.metadata.generation) {
        return Ok(Action::requeue(wait));
    }
    let reconciled = reconcile::reconcile(&ctx.provider, &room).await;
    let was_ready = room
        .status
        .as_ref()
        .is_some_and(|s| is_ready(&s.conditions));
    let status_changed = room.status.as_ref() != Some(&reconciled.status);

    // The status goes out only when it changed: a no-op reconcile writes nothing.
    if status_changed {
        let patch = serde_json::json!({
            "apiVersion": "chatroom.dev/v1alpha1",
            "kind": "ChatRoom",
            "status": reconciled.status,
        });
        api.patch_status(
            &room.name_any(),
            &PatchParams::apply(FIELD_MANAGER).force(),
            &Patch::Apply(&patch),
        )
        .await
        .map_err(|source| Error::Status {
            room: who.clone(),
            source,
        })?;
    }

    let same_generation =
        room.status.as_ref().and_then(|s| s.observed_generation) == room.metadata.generation;
    for applied in &reconciled.applied {
        let reason = if was_ready && same_generation {
            "DriftRepaired"
        } else if applied.outcome == Outcome::Created {
            "Created"
        } else {
            "Updated"
        };
        // One action per part: the Recorder merges Events of equal type, reason and action
        // into one series, which would hide all but the last part created.
        let action = pascal_case(applied.resource);
        let note = applied.to_string();
        publish_as(ctx, &room, EventType::Normal, reason, &action, &note).await;
    }
    ctx.metrics.room(&who, Some(reconciled.is_ready()));
    ctx.fleet_listed().await;

    match reconciled.failure {
        None => {
            if !was_ready {
                let url = reconciled.status.websocket_url.clone().unwrap_or_default();
                publish(
                    ctx,
                    &room,
                    EventType::Normal,
                    "Ready",
                    &format!("Clients connect to {url}"),
                )
                .await;
            }
            Ok(ctx.settled(&room))
        }
        Some(failure) => {
            ctx.metrics.failed(&failure.reason);
            // One Event per distinct failure: a retry that fails the same way changes no status.
            if status_changed {
                publish(
                    ctx,
                    &room,
                    EventType::Warning,
                    &failure.reason,
                    &failure.message,
                )
                .await;
            }
            if failure.permanent {
                // Retrying cannot help; the next spec change (a new generation) or the resync will.
                Ok(ctx.settled(&room))
            } else {
                Err(Error::NotReady {
                    room: who,
                    reason: failure.reason,
                    message: failure.message,
                })
            }
        }
    }
}

async fn cleanup(room: Arc<ChatRoom>, ctx: &Context) -> Result<Action, Error> {
    let who = key(&room);
    match reconcile::delete(&ctx.provider, &room).await {
        Ok(summary) => {
            publish(ctx, &room, EventType::Normal, "Deleted", &summary).await;
            ctx.metrics.room(&who, None);
            ctx.schedule.forget(&who);
            Ok(Action::await_change())
        }
        Err(message) => {
            publish(ctx, &room, EventType::Warning, "DeleteFailed", &message).await;
            Err(Error::Cleanup { room: who, message })
        }
    }
}

/// Exponential backoff per room, capped at [`MAX_BACKOFF`].
pub fn error_policy(room: Arc<ChatRoom>, error: &Error, ctx: Arc<Context>) -> Action {
    let delay = ctx.schedule.failed(&key(&room));
    ctx.metrics.failed(&error.reason());
    tracing::warn!(room = %key(&room), %error, ?delay, "reconcile failed; retrying");
    Action::requeue(delay)
}

async fn publish(ctx: &Context, room: &ChatRoom, type_: EventType, reason: &str, note: &str) {
    publish_as(ctx, room, type_, reason, "Reconcile", note).await;
}

async fn publish_as(
    ctx: &Context,
    room: &ChatRoom,
    type_: EventType,
    reason: &str,
    action: &str,
    note: &str,
) {
    let event = Event {
        type_,
        reason: reason.to_owned(),
        note: Some(note.chars().take(1000).collect()),
        action: action.to_owned(),
        secondary: None,
    };
    if let Err(error) = ctx.recorder.publish(&event, &room.object_ref(&())).await {
        tracing::warn!(room = %key(room), %error, "cannot publish an Event");
    }
}

fn pascal_case(word: &str) -> String {
    let mut chars = word.chars();
    chars
        .next()
        .map(|first| first.to_uppercase().chain(chars).collect())
        .unwrap_or_default()
}
