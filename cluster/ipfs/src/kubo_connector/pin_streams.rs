//! The streamed replies of [`KuboConnector`]: `pin/add` progress, whose deadline moves with each
//! new progress line, and the `pin/ls` pinset, yielded CID by CID as it arrives.

use std::collections::VecDeque;
use std::time::Duration;

use cluster_rt::tokio::time::Instant;
use cluster_types::Cid;
use futures::stream::BoxStream;
use futures::StreamExt;
use http_body_util::BodyExt;
use hyper::body::Incoming;

use super::{check_trailers, error_chain, KuboConnector};
use crate::json_stream::JsonStreamDecoder;
use crate::kubo_replies::{daemon_error_in_stream, decode_error, PinAddLine, PinLsLine};
use crate::{IpfsError, IpfsPinType};

/// The largest single JSON value of a streamed reply. A streamed `pin/ls` line is ~100 bytes;
/// the cap is this large for daemons that ignore `stream=true` and answer one
/// `{"Keys":{..}}` object for the whole pinset (~80 bytes per pin).
const STREAM_VALUE_BYTES_MAX: usize = 256 << 20;
/// The largest single JSON value of a `pin/add` progress reply (each is a few dozen bytes).
const PIN_ADD_VALUE_BYTES_MAX: usize = 1 << 20;

/// The most bytes of CIDs one `pin/add` request carries: its request line stays far below the
/// daemons' header limits (Kubo 1 MB; js-ipfs, on Node, 16 KB).
const PIN_ADD_ARGS_BYTES_MAX: usize = 8 * 1024;

impl KuboConnector {
    /// `pin/add` of `cids` with progress, in as few requests as keep each request line below
    /// [`PIN_ADD_ARGS_BYTES_MAX`], one after the other.
    pub(super) async fn pin_add(&self, cids: &[Cid], max_depth: i32) -> Result<(), IpfsError> {
        let args: Vec<String> = cids.iter().map(Cid::to_string).collect();
        let mut rest = args.as_slice();
        while !rest.is_empty() {
            let mut bytes = 0;
            let take = rest
                .iter()
                .take_while(|arg| {
                    bytes += arg.len() + "&arg=".len();
                    bytes <= PIN_ADD_ARGS_BYTES_MAX
                })
                .count()
                .max(1);
            self.pin_add_args(&rest[..take], max_depth).await?;
            rest = &rest[take..];
        }
        Ok(())
    }

    /// `pin/add` of `args` (one `arg` each) with progress: succeeds when the daemon reports the
    /// pins (or ends the reply cleanly); fails with a timeout only when no *new* progress
    /// arrives for `pin_timeout`.
    async fn pin_add_args(&self, args: &[String], max_depth: i32) -> Result<(), IpfsError> {
        let path = "pin/add";
        let arg = match args {
            [one] => one.clone(),
            [first, ..] => format!("{} CIDs ({first}, ...)", args.len()),
            [] => return Ok(()),
        };
        let depth = max_depth.to_string();
        let mut query: Vec<(&str, &str)> = args.iter().map(|a| ("arg", a.as_str())).collect();
        match max_depth {
            0 => query.push(("recursive", "false")),
            d if d > 0 => query.extend([("recursive", "true"), ("max-depth", depth.as_str())]),
            _ => query.push(("recursive", "true")),
        }
        query.push(("progress", "true"));
        let pin_timeout = self.config.pin_timeout;
        let stalled = |progress: Option<u64>| IpfsError::Timeout {
            path: path.into(),
            message: match progress {
                Some(p) => format!("pin of {arg} made no progress for {pin_timeout:?} (stuck at {p} blocks)"),
                None => format!("pin of {arg} made no progress for {pin_timeout:?}"),
            },
        };

        // A daemon that does not even start answering makes no progress either.
        let mut deadline = cluster_rt::now() + pin_timeout;
        let response = match within(deadline, async {
            let response = self.send(path, &query).await?;
            self.check_status(path, response).await
        })
        .await
        {
            Some(result) => result?,
            None => return Err(stalled(None)),
        };
        let mut body = response.into_body();
        let mut decoder = JsonStreamDecoder::new(PIN_ADD_VALUE_BYTES_MAX);
        let mut progress: Option<u64> = None;
        // Bounded by the deadline: every pass either extends it (new progress) or moves towards it.
        loop {
            let frame = match within(deadline, body.frame()).await {
                None => return Err(stalled(progress)),
                Some(None) => break,
                Some(Some(Err(e))) => return Err(self.unreachable(format!("reply of {path} cut: {}", error_chain(&e)))),
                Some(Some(Ok(frame))) => frame,
            };
            let data = match frame.into_data() {
                Ok(data) => data,
                Err(frame) => {
                    check_trailers(path, frame.trailers_ref())?;
                    continue;
                }
            };
            for line in decoder.push::<PinAddLine>(&data).map_err(|m| decode_error(path, m))? {
                daemon_error_in_stream(path, &line)?;
                if line.pins.is_some() {
                    // Kubo's last object; js-ipfs's only one.
                    return Ok(());
                }
                if let Some(p) = line.progress {
                    if progress.is_none_or(|last| p > last) {
                        progress = Some(p);
                        deadline = cluster_rt::now() + pin_timeout;
                    }
                }
            }
        }
        for line in decoder.finish::<PinAddLine>().map_err(|m| decode_error(path, m))? {
            daemon_error_in_stream(path, &line)?;
        }
        // A clean end of a 200 reply means done (Go's connector reads to EOF the same way).
        Ok(())
    }

    /// `pin/ls?stream=true&type=recursive`: every recursive pin, streamed; the reply must start
    /// within `request_timeout` and then deliver a chunk every `request_timeout`.
    pub(super) async fn pin_ls_stream(&self) -> Result<BoxStream<'static, Result<Cid, IpfsError>>, IpfsError> {
        let path = PinLsStream::PATH;
        let query = [("stream", "true"), ("type", "recursive")];
        let response = match cluster_rt::timeout(self.config.request_timeout, async {
            let response = self.send(path, &query).await?;
            self.check_status(path, response).await
        })
        .await
        {
            Ok(result) => result?,
            Err(elapsed) => {
                return Err(IpfsError::Timeout {
                    path: path.into(),
                    message: elapsed.to_string(),
                })
            }
        };
        let state = PinLsStream {
            address: self.address_text.clone(),
            body: response.into_body(),
            decoder: JsonStreamDecoder::new(STREAM_VALUE_BYTES_MAX),
            pending: VecDeque::new(),
            finished: false,
            idle_timeout: self.config.request_timeout,
        };
        let stream = futures::stream::unfold(state, |mut state| async move {
            let item = state.next().await?;
            Some((item, state))
        });
        Ok(stream.boxed())
    }
}

/// Runs `future` until `deadline`; `None` when the deadline came first.
async fn within<F: std::future::Future>(deadline: Instant, future: F) -> Option<F::Output> {
    let remaining = deadline.saturating_duration_since(cluster_rt::now());
    cluster_rt::timeout(remaining, future).await.ok()
}

/// The state of a streamed `pin/ls`: the body, the decoder, and CIDs decoded but not yet yielded.
struct PinLsStream {
    address: String,
    body: Incoming,
    decoder: JsonStreamDecoder,
    pending: VecDeque<Cid>,
    /// The body ended or failed: yield what is pending, then stop.
    finished: bool,
    idle_timeout: Duration,
}

impl PinLsStream {
    const PATH: &'static str = "pin/ls";

    /// The next CID; `None` at the end. After an error the stream ends.
    async fn next(&mut self) -> Option<Result<Cid, IpfsError>> {
        // Bounded: each pass consumes a frame of a finite body or ends the stream.
        loop {
            if let Some(cid) = self.pending.pop_front() {
                return Some(Ok(cid));
            }
            if self.finished {
                return None;
            }
            if let Err(e) = self.fill().await {
                self.finished = true;
                return Some(Err(e));
            }
        }
    }

    async fn fill(&mut self) -> Result<(), IpfsError> {
        let path = Self::PATH;
        let frame = match cluster_rt::timeout(self.idle_timeout, self.body.frame()).await {
            Err(elapsed) => {
                return Err(IpfsError::Timeout {
                    path: path.into(),
                    message: format!("pin list stalled: {elapsed}"),
                })
            }
            Ok(None) => {
                self.finished = true;
                let lines = self.decoder.finish::<PinLsLine>().map_err(|m| decode_error(path, m))?;
                return self.queue(lines);
            }
            Ok(Some(Err(e))) => {
                return Err(IpfsError::Unreachable {
                    address: self.address.clone(),
                    message: format!("reply of {path} cut: {}", error_chain(&e)),
                })
            }
            Ok(Some(Ok(frame))) => frame,
        };
        match frame.into_data() {
            Ok(data) => {
                let lines = self
                    .decoder
                    .push::<PinLsLine>(&data)
                    .map_err(|m| decode_error(path, m))?;
                self.queue(lines)
            }
            Err(frame) => check_trailers(path, frame.trailers_ref()),
        }
    }

    fn queue(&mut self, lines: Vec<PinLsLine>) -> Result<(), IpfsError> {
        let mut entries = Vec::new();
        for line in lines {
            line.entries(Self::PATH, &mut entries)?;
        }
        // We asked for recursive pins; drop anything a daemon that ignores `type` adds.
        let recursive = entries
            .into_iter()
            .filter(|(_, kind)| matches!(kind, None | Some(IpfsPinType::Recursive)))
            .map(|(cid, _)| cid);
        self.pending.extend(recursive);
        Ok(())
    }
}
