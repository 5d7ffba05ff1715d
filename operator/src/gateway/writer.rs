//! A connection's writer: drains its outbound queue into the socket, splits messages into
//! frames of at most the frame limit (as API Gateway splits `@connections` posts over 32 KB),
//! and on a close sends what was queued before the close, then the close frame.

use std::future::Future;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use futures::{Sink, SinkExt};
use tokio::sync::watch;
use tokio::time::{Instant, timeout, timeout_at};
use tokio_util::sync::CancellationToken;
use tungstenite::Message;
use tungstenite::protocol::frame::Frame;
use tungstenite::protocol::frame::coding::{Data, OpCode};

use super::budget::{Charge, MemoryBudget};
use super::outbound::{Entry, Outgoing, Queued, RESERVED_QUEUE_BYTES};
use super::registry::CloseRequest;

/// How long a close may take — the frames queued before it, the close frame, the client's
/// answer — before the TCP connection is simply dropped.
pub const CLOSE_GRACE: Duration = Duration::from_secs(2);
/// Frames written before one flush, so a broadcast burst costs one syscall, not hundreds.
const WRITE_BATCH: usize = 128;
/// The payload one batch may take off the queue: what a writer blocked on a client that does
/// not read holds outside its queue (the rest waits in the queue, under its limit). At least
/// one frame is taken, whatever its size.
const WRITE_BATCH_BYTES: usize = 64 * 1024;

/// How a batch of writes ended.
enum Batch {
    Written,
    /// Written, and a close was requested meanwhile.
    WrittenThenClose,
    /// Not written in full: the socket failed, the reader ended, or the client did not take
    /// it within the close grace. Nothing more may follow but a close frame.
    Cut,
}

pub struct Writer<S> {
    pub sink: S,
    pub queued: Queued,
    pub max_frame_bytes: usize,
    pub close_requested: watch::Receiver<Option<CloseRequest>>,
    /// The reader has ended: the connection is over, nothing more can be delivered.
    pub stop: CancellationToken,
    /// Where a socket the kernel holds full is counted, and how much it holds then.
    pub budget: Arc<MemoryBudget>,
    pub socket_buffer_bytes: usize,
}

impl<S> Writer<S>
where
    S: Sink<Message, Error = tungstenite::Error> + Unpin,
{
    /// Writes until the reader stops or a close is requested; then sends the requested close
    /// frame, after what was queued before it when the close asks for that, all within
    /// [`CLOSE_GRACE`].
    pub async fn run(mut self) {
        let can_drain = loop {
            let next = tokio::select! {
                biased;
                () = self.stop.cancelled() => break true,
                _ = self.close_requested.changed() => break true,
                next = self.queued.recv() => next,
            };
            let Some(frame) = next else { break true };
            match self.write(frame).await {
                Batch::Written => {}
                Batch::WrittenThenClose => break true,
                Batch::Cut => break false,
            }
        };
        let request = self.close_requested.borrow().clone();
        self.finish(request, can_drain).await;
    }

    /// Writes `first` and what follows it in the queue. A client that stops reading blocks
    /// the write; a close request or the reader ending must still get through. A batch under
    /// way may finish within the grace, so that no message is cut between its fragments.
    async fn write(&mut self, first: Entry) -> Batch {
        let written = counted_while_blocked(
            write_batch(
                &mut self.sink,
                first,
                &mut self.queued,
                self.max_frame_bytes,
                &self.budget,
            ),
            &self.budget,
            self.socket_buffer_bytes,
        );
        tokio::pin!(written);
        tokio::select! {
            result = &mut written => match result {
                Ok(()) => Batch::Written,
                Err(_) => Batch::Cut,
            },
            () = self.stop.cancelled() => Batch::Cut,
            _ = self.close_requested.changed() => match timeout(CLOSE_GRACE, &mut written).await {
                Ok(Ok(())) => Batch::WrittenThenClose,
                _ => Batch::Cut,
            },
        }
    }

    async fn finish(mut self, request: Option<CloseRequest>, can_drain: bool) {
        if let Some(request) = request {
            let deadline = Instant::now() + CLOSE_GRACE;
            if request.flush_first && can_drain {
                let _ = timeout_at(deadline, self.drain()).await;
            }
            let close = Message::Close(Some(request.frame()));
            let _ = timeout_at(deadline, self.sink.send(close)).await;
        }
        let _ = timeout(CLOSE_GRACE, self.sink.close()).await;
    }

    /// Writes every frame still queued.
    async fn drain(&mut self) -> Result<(), tungstenite::Error> {
        while let Some(entry) = self.queued.try_recv() {
            feed(&mut self.sink, entry.frame, self.max_frame_bytes).await?;
        }
        self.sink.flush().await
    }
}

/// `write`, counting `bytes` in the budget while it is blocked. A write the socket cannot
/// take at once has found the kernel's send buffer full: the kernel then holds a whole buffer
/// for this client, counted until the write completes.
async fn counted_while_blocked<F: Future>(
    write: F,
    budget: &Arc<MemoryBudget>,
    bytes: usize,
) -> F::Output {
    let mut write = std::pin::pin!(write);
    let mut held: Option<Charge> = None;
    std::future::poll_fn(|cx: &mut Context<'_>| match write.as_mut().poll(cx) {
        Poll::Ready(done) => Poll::Ready(done),
        Poll::Pending => {
            if held.is_none() {
                held = Some(budget.charge(bytes));
            }
            Poll::Pending
        }
    })
    .await
}

/// Writes `first` and what follows it in the queue, up to a batch. What the batch took off the
/// queue stays counted in the budget until written: its own payloads by a charge of the
/// writer's, shared ones by their broadcast's charge, which the batch holds.
async fn write_batch<S>(
    sink: &mut S,
    first: Entry,
    queued: &mut Queued,
    max_frame_bytes: usize,
    budget: &Arc<MemoryBudget>,
) -> Result<(), tungstenite::Error>
where
    S: Sink<Message, Error = tungstenite::Error> + Unpin,
{
    let mut batch = Vec::with_capacity(WRITE_BATCH);
    batch.push(first);
    queued.try_recv_many(WRITE_BATCH, WRITE_BATCH_BYTES, &mut batch);
    // The first bytes are inside the connection's reserve, as a queue's are: a batch of small
    // frames never touches the budget's shared counter.
    let own: usize = batch.iter().map(Entry::own_payload_bytes).sum();
    let _in_flight =
        (own > RESERVED_QUEUE_BYTES).then(|| budget.charge(own - RESERVED_QUEUE_BYTES));
    for entry in &batch {
        feed(sink, entry.frame.clone(), max_frame_bytes).await?;
    }
    sink.flush().await
}

/// Feeds one message, as frames of at most `max_frame_bytes`.
async fn feed<S>(
    sink: &mut S,
    frame: Outgoing,
    max_frame_bytes: usize,
) -> Result<(), tungstenite::Error>
where
    S: Sink<Message, Error = tungstenite::Error> + Unpin,
{
    let (payload, kind) = match frame {
        Outgoing::Pong(payload) => return sink.feed(Message::Pong(payload)).await,
        Outgoing::Text(text) if text.len() <= max_frame_bytes => {
            return sink.feed(Message::Text(text)).await;
        }
        Outgoing::Binary(payload) if payload.len() <= max_frame_bytes => {
            return sink.feed(Message::Binary(payload)).await;
        }
        Outgoing::Text(text) => (Bytes::from(text), Data::Text),
        Outgoing::Binary(payload) => (payload, Data::Binary),
    };
    for frame in fragments(payload, kind, max_frame_bytes) {
        sink.feed(Message::Frame(frame)).await?;
    }
    Ok(())
}

/// RFC 6455 5.4: the first frame carries the message's opcode, the rest are continuations,
/// the last has FIN. A text message may be split inside a character: UTF-8 applies to the
/// message, not to each frame.
fn fragments(payload: Bytes, kind: Data, max_frame_bytes: usize) -> Vec<Frame> {
    let size = max_frame_bytes.max(1);
    let count = payload.len().div_ceil(size);
    (0..count)
        .map(|i| {
            let chunk = payload.slice(i * size..((i + 1) * size).min(payload.len()));
            let opcode = if i == 0 { kind } else { Data::Continue };
            Frame::message(chunk, OpCode::Data(opcode), i + 1 == count)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_write_the_socket_cannot_take_is_counted_until_it_completes() {
        let budget = MemoryBudget::new(usize::MAX);
        let (release, wait) = tokio::sync::oneshot::channel::<()>();
        let write = counted_while_blocked(
            async {
                let _ = wait.await;
            },
            &budget,
            64 * 1024,
        );
        tokio::pin!(write);
        assert!(futures::poll!(write.as_mut()).is_pending());
        assert_eq!(budget.used(), 64 * 1024, "the kernel holds a full buffer");
        release.send(()).unwrap();
        write.await;
        assert_eq!(budget.used(), 0);
        counted_while_blocked(async {}, &budget, 64 * 1024).await;
        assert_eq!(
            budget.used(),
            0,
            "a write that went through at once holds nothing"
        );
    }

    #[test]
    fn a_message_over_the_frame_limit_is_split_with_continuations_and_one_fin() {
        let payload = Bytes::from(vec![b'x'; 70]);
        let frames = fragments(payload, Data::Text, 32);
        let shape: Vec<(OpCode, bool, usize)> = frames
            .iter()
            .map(|f| (f.header().opcode, f.header().is_final, f.payload().len()))
            .collect();
        assert_eq!(
            shape,
            [
                (OpCode::Data(Data::Text), false, 32),
                (OpCode::Data(Data::Continue), false, 32),
                (OpCode::Data(Data::Continue), true, 6),
            ]
        );
    }

    #[test]
    fn a_message_of_exactly_the_limit_is_one_frame() {
        let frames = fragments(Bytes::from(vec![0; 32]), Data::Binary, 32);
        assert_eq!(frames.len(), 1);
        assert!(frames[0].header().is_final);
        assert_eq!(frames[0].header().opcode, OpCode::Data(Data::Binary));
    }
}
