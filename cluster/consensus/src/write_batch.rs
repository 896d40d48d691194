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

/// Batches of commands in flight at once: the next batch fills while one is being committed.
const COMMITTERS_MAX: usize = 2;

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

    /// Commits `command` through `raft`, batched with concurrent writes when `batch` allows.
    pub(crate) async fn write(&self, raft: &Raft<TypeConfig>, command: Command, batch: bool) -> WriteOutcome {
        // A batch is never nested in another: its caller wants its entry as it is.
        if !batch || self.max_batch <= 1 || matches!(command, Command::Batch(_)) {
            return commit_one(raft, command).await;
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
            Place::Queued(answer) => match answer.await {
                Ok(Signal::Done(outcome)) => return outcome,
                Ok(Signal::YourTurn(command)) => command,
                Err(_) => return Err(WriteFailure::Abandoned),
            },
        };
        let slot = CommitterSlot { batcher: self };
        let others: Vec<Queued> = {
            let mut queue = self.queue.lock().expect("write queue lock");
            let take = queue.waiting.len().min(self.max_batch - 1);
            queue.waiting.drain(..take).collect()
        };
        let outcome = if others.is_empty() {
            commit_one(raft, command).await
        } else {
            commit_batch(raft, command, others).await
        };
        drop(slot);
        outcome
    }
}

/// Held by a caller while it commits a batch; gives the slot to the next queued caller (or
/// frees it) when the batch is done or its caller gives up.
struct CommitterSlot<'a> {
    batcher: &'a WriteBatcher,
}

impl Drop for CommitterSlot<'_> {
    fn drop(&mut self) {
        let mut queue = self.batcher.queue.lock().expect("write queue lock");
        while let Some(next) = queue.waiting.pop_front() {
            match next.signal.send(Signal::YourTurn(next.command)) {
                Ok(()) => return,
                // That caller gave up before its turn: its command is dropped uncommitted.
                Err(_) => continue,
            }
        }
        queue.committers -= 1;
    }
}

async fn commit_one(raft: &Raft<TypeConfig>, command: Command) -> WriteOutcome {
    match raft.client_write(command).await {
        Ok(written) => Ok(Committed {
            response: written.data,
            log_index: written.log_id.index,
        }),
        Err(e) => Err(WriteFailure::Raft(e)),
    }
}

/// Commits `first` and `others` as one entry; answers `others` and returns `first`'s outcome.
/// If this future is dropped, `others` are dropped unanswered and learn it was abandoned.
async fn commit_batch(raft: &Raft<TypeConfig>, first: Command, others: Vec<Queued>) -> WriteOutcome {
    let count = others.len() + 1;
    let mut commands = Vec::with_capacity(count);
    commands.push(first);
    let mut signals = Vec::with_capacity(others.len());
    for queued in others {
        commands.push(queued.command);
        signals.push(queued.signal);
    }
    let outcomes: Vec<WriteOutcome> = match raft
        .client_write(Command::Batch(commands))
        .await
        .map(|written| Committed {
            response: written.data,
            log_index: written.log_id.index,
        }) {
        Ok(Committed {
            response: CommandResponse::Batch(responses),
            log_index,
        }) if responses.len() == count => responses
            .into_iter()
            .map(|response| Ok(Committed { response, log_index }))
            .collect(),
        Ok(other) => vec![Err(WriteFailure::Unexpected(other.response)); count],
        Err(e) => vec![Err(WriteFailure::Raft(e)); count],
    };
    let mut outcomes = outcomes.into_iter();
    let own = outcomes.next().expect("one outcome per command");
    for (signal, outcome) in signals.into_iter().zip(outcomes) {
        // A caller that gave up meanwhile is not waiting for its answer.
        let _ = signal.send(Signal::Done(outcome));
    }
    own
}
