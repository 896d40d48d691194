//! Group commit on the leader: writes that arrive while earlier ones are being committed share
//! one Raft entry, so one log fsync on each member and one state commit serve all of them.
//!
//! No task of its own (so the simulator schedules nothing new): the caller that finds a free
//! committing slot commits its own command together with every command queued behind it
//! (at most `max_batch`), answers each of them, and hands its slot to the next queued caller.
//! A lone write is committed as it is, exactly as without batching. Each caller is answered
//! only once its command is committed (and applied here), with its own response.

use std::collections::VecDeque;
use std::sync::Mutex;

use cluster_rt::tokio::sync::oneshot;
use openraft::error::{ClientWriteError, RaftError};
use openraft::Raft;

use crate::{Command, CommandResponse, Committed, MemberNode, NodeId, TypeConfig};

/// What committing one command gave: openraft's refusal is shared by every command of a batch.
pub(crate) type WriteOutcome = Result<Committed, WriteFailure>;

/// Why a command was not answered as committed.
// These values live for one write and move once; boxing would cost an allocation per write.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Clone)]
pub(crate) enum WriteFailure {
    /// openraft refused or failed the entry that carried it.
    Raft(RaftError<NodeId, ClientWriteError<NodeId, MemberNode>>),
    /// The caller committing its batch gave up (a timeout, a failing disk): the entry may or may
    /// not be committed.
    Abandoned,
    /// The batch was committed but answered with something else than one response per command.
    Unexpected(CommandResponse),
}

/// Batches of commands in flight at once. One: the next batch fills while one is committed,
/// and grows with the load. With two, on 2 cores, three members and 64 connections
/// (`scripts/bench-cpu.py`), batches held about 22 writes and each member's log took 0.04-0.05
/// fsyncs a write; with one, about 33 writes and 0.03 fsyncs, and 5-10 % less CPU a write on
/// every member (16 connections: 5,400-5,550 -> 5,890-5,990 writes/s).
const COMMITTERS_MAX: usize = 1;

/// A queued caller is either answered or given the committing slot (with its command back).
#[allow(clippy::large_enum_variant)]
enum Signal {
    Done(WriteOutcome),
    YourTurn(Command),
}

/// Where a write stands on arrival: committing (a slot was free) or queued behind a batch.
#[allow(clippy::large_enum_variant)]
enum Place {
    Committer(Command),
    Queued(oneshot::Receiver<Signal>),
}

struct Queued {
    command: Command,
    signal: oneshot::Sender<Signal>,
}

#[derive(Default)]
struct Queue {
    waiting: VecDeque<Queued>,
    committers: usize,
}

/// Combines concurrent writes into batches (see the module doc).
pub(crate) struct WriteBatcher {
    queue: Mutex<Queue>,
    max_batch: usize,
}

impl WriteBatcher {
    /// At most `max_batch` commands per entry; 0 or 1 commits every command on its own.
    pub(crate) fn new(max_batch: usize) -> WriteBatcher {
        WriteBatcher {
            queue: Mutex::new(Queue::default()),
            max_batch,
        }
    }

    /// Commits `command` with `commit` (one Raft entry per call), batched with concurrent
    /// writes when `batch` allows.
    pub(crate) async fn write<C, F>(&self, command: Command, batch: bool, commit: &C) -> WriteOutcome
    where
        C: Fn(Command) -> F,
        F: std::future::Future<Output = WriteOutcome>,
    {
        // A batch is never nested in another: its caller wants its entry as it is.
        if !batch || self.max_batch <= 1 || matches!(command, Command::Batch(_)) {
            return commit(command).await;
        }
        let place = {
            let mut queue = self.queue.lock().expect("write queue lock");
            if queue.committers < COMMITTERS_MAX {
                queue.committers += 1;
                Place::Committer(command)
            } else {
                let (signal, answer) = oneshot::channel();
                queue.waiting.push_back(Queued { command, signal });
                Place::Queued(answer)
            }
        };
        let command = match place {
            Place::Committer(command) => command,
            Place::Queued(answer) => {
                let mut waiting = Waiting {
                    batcher: self,
                    answer: Some(answer),
                };
                let answer = waiting.answer.as_mut().expect("set above").await;
                waiting.answer = None;
                match answer {
                    Ok(Signal::Done(outcome)) => return outcome,
                    Ok(Signal::YourTurn(command)) => command,
                    Err(_) => return Err(WriteFailure::Abandoned),
                }
            }
        };
        let slot = CommitterSlot { batcher: self };
        let others: Vec<Queued> = {
            let mut queue = self.queue.lock().expect("write queue lock");
            let take = queue.waiting.len().min(self.max_batch - 1);
            queue.waiting.drain(..take).collect()
        };
        let outcome = if others.is_empty() {
            commit(command).await
        } else {
            commit_batch(commit, command, others).await
        };
        drop(slot);
        outcome
    }

    /// Gives a committing slot to the next queued caller that still waits, or frees it.
    fn pass_slot(&self) {
        let mut queue = self.queue.lock().expect("write queue lock");
        while let Some(next) = queue.waiting.pop_front() {
            match next.signal.send(Signal::YourTurn(next.command)) {
                Ok(()) => return,
                // That caller gave up before its turn: its command is dropped uncommitted.
                Err(_) => continue,
            }
        }
        queue.committers -= 1;
    }

    #[cfg(test)]
    fn committers(&self) -> usize {
        self.queue.lock().expect("write queue lock").committers
    }
}

/// Held by a caller while it commits a batch; passes the slot on when the batch is done or its
/// caller gives up.
struct CommitterSlot<'a> {
    batcher: &'a WriteBatcher,
}

impl Drop for CommitterSlot<'_> {
    fn drop(&mut self) {
        self.batcher.pass_slot();
    }
}

/// A queued caller. If it gives up after the slot was handed to it but before it took it (its
/// write timed out, the disk failed), the slot is passed on rather than lost: two lost slots
/// would leave every later write queued for good.
struct Waiting<'a> {
    batcher: &'a WriteBatcher,
    answer: Option<oneshot::Receiver<Signal>>,
}

impl Drop for Waiting<'_> {
    fn drop(&mut self) {
        if let Some(mut answer) = self.answer.take() {
            answer.close();
            if let Ok(Signal::YourTurn(_)) = answer.try_recv() {
                self.batcher.pass_slot();
            }
        }
    }
}

/// Commits through `raft` as one entry.
pub(crate) async fn commit_one(raft: &Raft<TypeConfig>, command: Command) -> WriteOutcome {
    // Boxed: openraft's future is 7 KB, and every future above this one (down to the REST
    // handler's) would carry it and be copied whole when moved.
    match Box::pin(raft.client_write(command)).await {
        Ok(written) => Ok(Committed {
            response: written.data,
            log_index: written.log_id.index,
        }),
        Err(e) => Err(WriteFailure::Raft(e)),
    }
}

/// Commits `first` and `others` as one entry; answers `others` and returns `first`'s outcome.
/// If this future is dropped, `others` are dropped unanswered and learn it was abandoned.
async fn commit_batch<C, F>(commit: &C, first: Command, others: Vec<Queued>) -> WriteOutcome
where
    C: Fn(Command) -> F,
    F: std::future::Future<Output = WriteOutcome>,
{
    let count = others.len() + 1;
    let mut commands = Vec::with_capacity(count);
    commands.push(first);
    let mut signals = Vec::with_capacity(others.len());
    for queued in others {
        commands.push(queued.command);
        signals.push(queued.signal);
    }
    let outcomes: Vec<WriteOutcome> = match commit(Command::Batch(commands)).await {
        Ok(Committed {
            response: CommandResponse::Batch(responses),
            log_index,
        }) if responses.len() == count => responses
            .into_iter()
            .map(|response| Ok(Committed { response, log_index }))
            .collect(),
        Ok(other) => vec![Err(WriteFailure::Unexpected(other.response)); count],
        Err(e) => vec![Err(e); count],
    };
    let mut outcomes = outcomes.into_iter();
    let own = outcomes.next().expect("one outcome per command");
    for (signal, outcome) in signals.into_iter().zip(outcomes) {
        // A caller that gave up meanwhile is not waiting for its answer.
        let _ = signal.send(Signal::Done(outcome));
    }
    own
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use cluster_types::Cid;

    fn unpin(i: u8) -> Command {
        Command::Unpin(Cid::raw_sha256(&[i]))
    }

    /// A commit that waits for a permit of `gate`, then answers each command with `Unpinned(None)`.
    fn gated(
        gate: Arc<cluster_rt::tokio::sync::Semaphore>,
    ) -> impl Fn(Command) -> futures::future::BoxFuture<'static, WriteOutcome> {
        move |command| {
            let gate = gate.clone();
            Box::pin(async move {
                gate.acquire().await.expect("open").forget();
                let response = match command {
                    Command::Batch(commands) => {
                        CommandResponse::Batch(commands.iter().map(|_| CommandResponse::Unpinned(None)).collect())
                    }
                    _ => CommandResponse::Unpinned(None),
                };
                Ok(Committed { response, log_index: 1 })
            })
        }
    }

    async fn settle() {
        for _ in 0..20 {
            cluster_rt::tokio::task::yield_now().await;
        }
    }

    /// Writes queued behind the committing ones share entries, each is answered, and all slots
    /// come back.
    #[tokio::test(flavor = "current_thread")]
    async fn queued_writes_share_entries() {
        let batcher = Arc::new(WriteBatcher::new(64));
        let gate = Arc::new(cluster_rt::tokio::sync::Semaphore::new(0));
        let entries = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let writes: Vec<_> = (0..10u8)
            .map(|i| {
                let (batcher, gate, entries) = (batcher.clone(), gate.clone(), entries.clone());
                tokio::spawn(async move {
                    let commit = gated(gate);
                    let counted = |command: Command| {
                        entries.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                        commit(command)
                    };
                    batcher.write(unpin(i), true, &counted).await
                })
            })
            .collect();
        settle().await;
        assert_eq!(batcher.committers(), COMMITTERS_MAX, "the rest wait");
        gate.add_permits(10);
        for write in writes {
            let outcome = write.await.unwrap().unwrap();
            assert_eq!(outcome.response, CommandResponse::Unpinned(None));
        }
        // The committing ones first, then the queued ones in one entry, or in one per slot if
        // every slot was passed on before the first taker drained the queue.
        let entries = entries.load(std::sync::atomic::Ordering::SeqCst);
        assert!(
            (COMMITTERS_MAX + 1..=2 * COMMITTERS_MAX).contains(&entries),
            "10 writes in {entries} entries"
        );
        assert_eq!(batcher.committers(), 0);
    }

    /// A queued write given up just after the slot was handed to it passes the slot on.
    #[tokio::test(flavor = "current_thread")]
    async fn a_write_given_up_as_its_turn_comes_does_not_keep_the_slot() {
        let batcher = Arc::new(WriteBatcher::new(64));
        let gate = Arc::new(cluster_rt::tokio::sync::Semaphore::new(0));
        let committing: Vec<_> = (0..COMMITTERS_MAX as u8)
            .map(|i| {
                let (batcher, gate) = (batcher.clone(), gate.clone());
                tokio::spawn(async move { batcher.write(unpin(i), true, &gated(gate)).await })
            })
            .collect();
        settle().await;
        assert_eq!(batcher.committers(), COMMITTERS_MAX);
        let commit = gated(gate.clone());
        let mut queued = Box::pin(batcher.write(unpin(9), true, &commit));
        assert!(
            futures::poll!(&mut queued).is_pending(),
            "queued behind the committing ones"
        );
        // One of them finishes and hands its slot to the queued write, which is given up
        // before it runs again.
        gate.add_permits(1);
        while !committing.iter().any(|write| write.is_finished()) {
            cluster_rt::tokio::task::yield_now().await;
        }
        drop(queued);
        gate.add_permits(COMMITTERS_MAX);
        for write in committing {
            write.await.unwrap().unwrap();
        }
        assert_eq!(batcher.committers(), 0, "no slot was lost");
    }
}
