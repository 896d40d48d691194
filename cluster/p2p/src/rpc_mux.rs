//! Pipelined RPC on one long-lived stream per peer, for the small requests on the write path
//! (Raft's AppendEntries and Vote, writes forwarded to the leader).
//!
//! request-response opens a stream per request: a yamux open and close, a protocol
//! negotiation round trip and three timers (each a wake of a timer thread). At one write at a
//! time that was most of a member's CPU. Here frames are `[u32 length][u64 id][payload]`
//! (big endian; the length covers id and payload), answers come back with their request's id,
//! in any order, and frames queued together go out in one write.
//!
//! The first call to a peer, and every call while no stream to it is up, goes through
//! request-response, which dials; a stream is opened beside it for the next calls. A peer
//! that does not speak this protocol (an earlier version) is asked again after a while.
//! Requests that can take long or answer much (status pages, snapshots) stay on
//! request-response: behind them on one stream, heartbeats would wait.

use std::collections::HashMap;
use std::io;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock};
use std::time::Duration;

use cluster_rpc::wire::{self, MAX_FRAME};
use cluster_rpc::{RpcHandler, RpcResponse};
use cluster_types::TransportFailure;
use futures::io::{ReadHalf, WriteHalf};
use futures::{AsyncReadExt, AsyncWriteExt, StreamExt};
use libp2p::{PeerId, Stream, StreamProtocol};
use tokio::sync::{mpsc, oneshot, Semaphore};

use crate::codec::TrafficCounter;

/// The protocol of the long-lived streams.
pub(crate) const MUX_PROTOCOL: StreamProtocol = StreamProtocol::new("/ipfs-cluster-rs/rpc-mux/1.0.0");

/// Opening a stream must finish within this (the connection is up: it is one round trip).
const OPEN_LIMIT: Duration = Duration::from_secs(10);
/// A peer whose stream could not be opened is tried again after this.
const RETRY_FAILED: Duration = Duration::from_secs(1);
/// A peer that does not speak the protocol is asked again after this (it may be upgraded).
const RETRY_UNSUPPORTED: Duration = Duration::from_secs(60);
/// Frames queued together are written at once, up to about this many bytes.
const WRITE_BATCH: usize = 256 << 10;
/// Requests of one stream being handled at once; further frames wait to be read.
const HANDLED_PER_STREAM: usize = 1024;

type Answer = Result<Vec<u8>, TransportFailure>;
type Pending = Mutex<HashMap<u64, oneshot::Sender<Answer>>>;

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(|e| e.into_inner())
}

/// Where the stream to a peer stands.
enum PeerState {
    Open(Arc<Channel>),
    Opening,
    /// Opening failed (`unsupported`: the peer does not speak the protocol) at this instant.
    Failed {
        at: cluster_rt::tokio::time::Instant,
        unsupported: bool,
    },
}

/// The outbound streams of one host, one per peer.
pub(crate) struct MuxChannels {
    control: libp2p_stream::Control,
    traffic: Arc<TrafficCounter>,
    peers: Mutex<HashMap<PeerId, PeerState>>,
}

impl MuxChannels {
    pub(crate) fn new(control: libp2p_stream::Control, traffic: Arc<TrafficCounter>) -> Arc<MuxChannels> {
        Arc::new(MuxChannels {
            control,
            traffic,
            peers: Mutex::new(HashMap::new()),
        })
    }

    /// How many peers have an open stream.
    pub(crate) fn open_count(&self) -> usize {
        lock(&self.peers)
            .values()
            .filter(|state| matches!(state, PeerState::Open(channel) if !channel.is_closed()))
            .count()
    }

    /// The open stream to `peer`, if there is one.
    pub(crate) fn channel(&self, peer: PeerId) -> Option<Arc<Channel>> {
        match lock(&self.peers).get(&peer) {
            Some(PeerState::Open(channel)) if !channel.is_closed() => Some(channel.clone()),
            _ => None,
        }
    }

    /// Starts opening a stream to `peer` (connected: a call just reached it), unless one is
    /// open or opening, or opening failed lately.
    pub(crate) fn open_beside(self: &Arc<Self>, peer: PeerId) {
        let mut peers = lock(&self.peers);
        match peers.get(&peer) {
            Some(PeerState::Open(channel)) if !channel.is_closed() => return,
            Some(PeerState::Opening) => return,
            Some(PeerState::Failed { at, unsupported }) => {
                let wait = if *unsupported { RETRY_UNSUPPORTED } else { RETRY_FAILED };
                if cluster_rt::now().duration_since(*at) < wait {
                    return;
                }
            }
            _ => {}
        }
        peers.insert(peer, PeerState::Opening);
        drop(peers);
        let channels = self.clone();
        cluster_rt::spawn(async move { channels.open(peer).await });
    }

    async fn open(self: Arc<Self>, peer: PeerId) {
        let mut control = self.control.clone();
        let failed = |unsupported| PeerState::Failed {
            at: cluster_rt::now(),
            unsupported,
        };
        let state = match cluster_rt::timeout(OPEN_LIMIT, control.open_stream(peer, MUX_PROTOCOL)).await {
            Ok(Ok(stream)) => PeerState::Open(Channel::start(stream, self.traffic.clone())),
            Ok(Err(libp2p_stream::OpenStreamError::UnsupportedProtocol(_))) => {
                tracing::debug!("{peer} does not speak {MUX_PROTOCOL}: requests to it go one stream each");
                failed(true)
            }
            Ok(Err(e)) => {
                tracing::debug!("opening a {MUX_PROTOCOL} stream to {peer} failed: {e}");
                failed(false)
            }
            Err(_) => failed(false),
        };
        lock(&self.peers).insert(peer, state);
    }
}

/// One long-lived outbound stream: requests written by a task, answers read by another.
pub(crate) struct Channel {
    requests: mpsc::UnboundedSender<(u64, Vec<u8>)>,
    pending: Arc<Pending>,
    next_id: AtomicU64,
    closed: Arc<AtomicBool>,
}

impl Channel {
    fn start(stream: Stream, traffic: Arc<TrafficCounter>) -> Arc<Channel> {
        let (reader, writer) = stream.split();
        let (requests, queued) = mpsc::unbounded_channel();
        let pending: Arc<Pending> = Arc::default();
        let closed = Arc::new(AtomicBool::new(false));
        let (pending_w, closed_w, traffic_w) = (pending.clone(), closed.clone(), traffic.clone());
        cluster_rt::spawn(async move {
            write_frames(writer, queued, &traffic_w).await;
            close(&pending_w, &closed_w);
        });
        let (pending_r, closed_r) = (pending.clone(), closed.clone());
        cluster_rt::spawn(async move {
            read_answers(reader, &pending_r, &traffic).await;
            close(&pending_r, &closed_r);
        });
        Arc::new(Channel {
            requests,
            pending,
            next_id: AtomicU64::new(0),
            closed,
        })
    }

    fn is_closed(&self) -> bool {
        self.closed.load(Ordering::SeqCst)
    }

    /// Sends `request` and waits for its answer, at most `timeout`. A stream that closes
    /// with the request on its way leaves its outcome unknown (a network failure); one closed
    /// before it went out did not deliver it (unreachable).
    pub(crate) async fn call(&self, request: Vec<u8>, timeout: Duration) -> Answer {
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let (reply, answer) = oneshot::channel();
        lock(&self.pending).insert(id, reply);
        // Checked after the insert: a close drains what was inserted before it. Not sent at
        // all: not delivered, which a caller may safely try again.
        if self.is_closed() || self.requests.send((id, request)).is_err() {
            lock(&self.pending).remove(&id);
            return Err(TransportFailure::Unreachable(
                "the stream to the peer closed before the request went out".into(),
            ));
        }
        match cluster_rt::timeout(timeout, answer).await {
            Err(_) => {
                lock(&self.pending).remove(&id);
                Err(TransportFailure::Network(format!("no answer within {timeout:?}")))
            }
            Ok(Err(_)) => Err(TransportFailure::Network(
                "the stream to the peer closed mid-call".into(),
            )),
            Ok(Ok(answer)) => answer,
        }
    }
}

/// Marks the channel closed and fails every call waiting on it.
fn close(pending: &Pending, closed: &AtomicBool) {
    closed.store(true, Ordering::SeqCst);
    for (_, reply) in lock(pending).drain() {
        let _ = reply.send(Err(TransportFailure::Network(
            "the connection to the peer closed mid-call".into(),
        )));
    }
}

async fn read_answers(mut reader: ReadHalf<Stream>, pending: &Pending, traffic: &TrafficCounter) {
    while let Ok((id, answer)) = read_frame(&mut reader).await {
        traffic.received(12 + answer.len());
        if let Some(reply) = lock(pending).remove(&id) {
            let _ = reply.send(Ok(answer));
        }
    }
}

/// Writes the queued frames, those queued together in one write, until the queue closes or
/// a write fails.
async fn write_frames(
    mut writer: WriteHalf<Stream>,
    mut queued: mpsc::UnboundedReceiver<(u64, Vec<u8>)>,
    traffic: &TrafficCounter,
) {
    let mut buffer = Vec::new();
    while let Some(first) = queued.recv().await {
        buffer.clear();
        put_frame(&mut buffer, first);
        while buffer.len() < WRITE_BATCH {
            match queued.try_recv() {
                Ok(next) => put_frame(&mut buffer, next),
                Err(_) => break,
            }
        }
        if writer.write_all(&buffer).await.is_err() || writer.flush().await.is_err() {
            return;
        }
        traffic.sent(buffer.len());
    }
    let _ = writer.close().await;
}

fn put_frame(buffer: &mut Vec<u8>, (id, payload): (u64, Vec<u8>)) {
    buffer.extend_from_slice(&((8 + payload.len()) as u32).to_be_bytes());
    buffer.extend_from_slice(&id.to_be_bytes());
    buffer.extend_from_slice(&payload);
}

/// One frame: its id and payload. A length under 8 or over the frame limit is refused
/// before allocating.
async fn read_frame(reader: &mut ReadHalf<Stream>) -> io::Result<(u64, Vec<u8>)> {
    let mut length = [0; 4];
    reader.read_exact(&mut length).await?;
    let length = u32::from_be_bytes(length) as usize;
    if !(8..=MAX_FRAME + 8).contains(&length) {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            format!("a frame of {length} bytes"),
        ));
    }
    let mut id = [0; 8];
    reader.read_exact(&mut id).await?;
    let mut payload = vec![0; length - 8];
    reader.read_exact(&mut payload).await?;
    Ok((u64::from_be_bytes(id), payload))
}

/// Serves the inbound streams of this protocol with `handler` (once set; before, every
/// request is answered "starting", as on request-response).
pub(crate) fn serve(
    mut incoming: libp2p_stream::IncomingStreams,
    handler: Arc<OnceLock<Arc<dyn RpcHandler>>>,
    traffic: Arc<TrafficCounter>,
) {
    cluster_rt::spawn(async move {
        while let Some((peer, stream)) = incoming.next().await {
            cluster_rt::spawn(serve_stream(peer, stream, handler.clone(), traffic.clone()));
        }
    });
}

async fn serve_stream(
    peer: PeerId,
    stream: Stream,
    handler: Arc<OnceLock<Arc<dyn RpcHandler>>>,
    traffic: Arc<TrafficCounter>,
) {
    let (mut reader, writer) = stream.split();
    let (answers, queued) = mpsc::unbounded_channel();
    let writing = traffic.clone();
    cluster_rt::spawn(async move { write_frames(writer, queued, &writing).await });
    let handling = Arc::new(Semaphore::new(HANDLED_PER_STREAM));
    while let Ok((id, request)) = read_frame(&mut reader).await {
        traffic.received(12 + request.len());
        let Ok(permit) = handling.clone().acquire_owned().await else {
            break;
        };
        let handler = handler.get().cloned();
        let answers = answers.clone();
        cluster_rt::spawn(async move {
            let answer = match handler {
                None => wire::encode_response(&RpcResponse::Starting),
                Some(handler) => match wire::decode_request(&request) {
                    Ok(request) => wire::encode_response(&handler.handle(cluster_types::PeerId(peer), request).await),
                    Err(e) => {
                        // An empty answer: the caller fails to decode it, as a garbled one.
                        tracing::warn!("undecodable request from {peer}: {e}");
                        Vec::new()
                    }
                },
            };
            let _ = answers.send((id, answer));
            drop(permit);
        });
    }
}
