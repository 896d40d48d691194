//! After `pin add`, `pin rm` and `add`: waiting (`--wait`) until the cluster reports the
//! target status, and printing the pin or its status as Go's ctl does.

use std::io::Write;
use std::time::Duration;

use cluster_types::{Cid, GlobalPinInfo, Pin, TrackerStatus};
use http::Method;

use crate::cli::WaitArgs;
use crate::client::Client;
use crate::commands::{required, Output};
use crate::error::CtlError;
use crate::paths;

/// How often `--wait` polls the status (Go's `defaultWaitCheckFreq`).
const WAIT_CHECK_EVERY: Duration = Duration::from_secs(1);
/// How long to wait before fetching the status after a pin/unpin without `--wait` (Go sleeps 1 s).
const STATUS_DELAY: Duration = Duration::from_secs(1);

/// Go's `handlePinResponseFormatFlags`: optionally wait for the target status, then print the pin
/// (`--no-status`) or the status (the one `--wait` ended with, or one fetched after 1 s).
pub(crate) async fn after_pin<W: Write>(
    client: &Client,
    out: &mut Output<W>,
    pin: Pin,
    target: TrackerStatus,
    no_status: bool,
    wait: &WaitArgs,
    wait_timeout: Option<Duration>,
) -> Result<(), CtlError> {
    let mut status = None;
    if wait.wait {
        let limit = wait.wait_limit.unwrap_or(match target {
            TrackerStatus::Pinned => i64::from(pin.options.replication_factor_min),
            _ => 0,
        });
        status = Some(wait_for(client, &pin.cid, target, wait_timeout, limit).await?);
    }
    if no_status {
        return out.emit(&pin);
    }
    let status = match status {
        Some(status) => status,
        None => {
            tokio::time::sleep(STATUS_DELAY).await;
            required(client.call(Method::GET, &paths::status_path(&pin.cid, false)).await?)?
        }
    };
    out.emit(&status)
}

/// Polls `GET /pins/<cid>` every second until [`status_reached`] says so, or `timeout` passes.
pub(crate) async fn wait_for(
    client: &Client,
    cid: &Cid,
    target: TrackerStatus,
    timeout: Option<Duration>,
    limit: i64,
) -> Result<GlobalPinInfo, CtlError> {
    let deadline = timeout.map(|t| tokio::time::Instant::now() + t);
    // The deadline ends the wait, not the operation: it was committed and goes on.
    let what_goes_on = match target {
        TrackerStatus::Unpinned => "is out of the pinset and the cluster keeps unpinning it",
        _ => "stays in the pinset and the cluster keeps pinning it",
    };
    let expired = || CtlError::Deadline {
        doing: "waiting for pin status".into(),
        note: Some(format!(
            "{cid} {what_goes_on}; follow it with: ipfs-cluster-ctl status {cid}"
        )),
    };
    loop {
        let next_poll = tokio::time::Instant::now() + WAIT_CHECK_EVERY;
        match deadline {
            Some(deadline) if deadline <= next_poll => {
                tokio::time::sleep_until(deadline).await;
                return Err(expired());
            }
            _ => tokio::time::sleep_until(next_poll).await,
        }
        let path = paths::status_path(cid, false);
        let poll = client.call(Method::GET, &path);
        let answer = match deadline {
            Some(deadline) => tokio::time::timeout_at(deadline, poll).await.map_err(|_| expired())??,
            None => poll.await?,
        };
        let info: GlobalPinInfo = required(answer)?;
        if status_reached(target, &info, limit).map_err(|e| CtlError::local("waiting for pin status", e))? {
            return Ok(info);
        }
    }
}

/// Go's `statusReached`: an error status anywhere fails; with a positive `limit` (capped at the
/// number of peers), enough peers at `target` is success; otherwise every peer must be at `target`
/// (`remote` counts as done when waiting for `pinned`).
pub fn status_reached(target: TrackerStatus, info: &GlobalPinInfo, limit: i64) -> Result<bool, String> {
    let failed = info.peer_map.values().any(|s| {
        matches!(
            s.status,
            TrackerStatus::Undefined
                | TrackerStatus::ClusterError
                | TrackerStatus::PinError
                | TrackerStatus::UnpinError
        )
    });
    if failed {
        return Err(format!("error has occurred while attempting to reach status: {target}"));
    }
    let limit = limit.min(info.peer_map.len() as i64);
    if limit > 0 {
        let reached = info.peer_map.values().filter(|s| s.status == target).count() as i64;
        return Ok(reached >= limit);
    }
    Ok(info
        .peer_map
        .values()
        .all(|s| s.status == target || (target == TrackerStatus::Pinned && s.status == TrackerStatus::Remote)))
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use cluster_types::{PinInfoShort, Timestamp};

    use super::*;

    fn info(statuses: &[TrackerStatus]) -> GlobalPinInfo {
        let mut peer_map = BTreeMap::new();
        for (i, status) in statuses.iter().enumerate() {
            peer_map.insert(
                format!("peer{i}"),
                PinInfoShort {
                    status: *status,
                    ..Default::default()
                },
            );
        }
        GlobalPinInfo {
            cid: "QmVaUYQRqkBqYoBxokHPmrACbzn8WsiJKKkNZK45NCmEA9".parse().unwrap(),
            name: String::new(),
            allocations: vec![],
            origins: vec![],
            created: Timestamp::ZERO,
            metadata: BTreeMap::new(),
            peer_map,
        }
    }

    #[test]
    fn wait_conditions_follow_go() {
        use TrackerStatus::*;
        let pinned = TrackerStatus::Pinned;
        assert_eq!(status_reached(pinned, &info(&[Pinned, Remote, Pinned]), 0), Ok(true));
        assert_eq!(status_reached(pinned, &info(&[Pinned, Pinning]), 0), Ok(false));
        assert_eq!(status_reached(pinned, &info(&[Pinned, Pinning]), 1), Ok(true));
        assert_eq!(status_reached(pinned, &info(&[Pinned, Pinning]), 2), Ok(false));
        // A limit above the peer count is capped; -1 means "all peers".
        assert_eq!(status_reached(pinned, &info(&[Pinned, Pinned]), 5), Ok(true));
        assert_eq!(status_reached(pinned, &info(&[Pinned, Remote]), -1), Ok(true));
        assert!(status_reached(pinned, &info(&[Pinned, PinError]), 1).is_err());
        assert!(status_reached(pinned, &info(&[Undefined]), 1).is_err());
        let unpinned = TrackerStatus::Unpinned;
        assert_eq!(status_reached(unpinned, &info(&[Unpinned, Remote]), 0), Ok(false));
        assert_eq!(status_reached(unpinned, &info(&[Unpinned, Unpinned]), 0), Ok(true));
    }
}
