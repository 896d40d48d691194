//! Snapshot bodies: a consistent view of the pinset written as one line per pin when openraft
//! sends a snapshot (never kept whole on disk or in memory), and each received line read back.

use super::*;

/// Writes the snapshot body to `out`: the applied meta line, then one pin per line, as the
/// base64 text of its binary form ([`pin_codec`]).
fn encode_snapshot(
    pins: impl Iterator<Item = Result<Pin, StateError>>,
    meta: &AppliedMeta,
    out: &mut impl Write,
) -> Result<(), SnapshotWriteError> {
    serde_json::to_writer(&mut *out, meta).map_err(|e| StateError::Storage(format!("encoding a snapshot: {e}")))?;
    out.write_all(b"\n")?;
    let mut text = String::new();
    for pin in pins {
        write_snapshot_line(&pin?, &mut text, out)?;
    }
    Ok(())
}

/// Writes one snapshot body line of `pin` to `out`, through the reused buffer `text`.
fn write_snapshot_line(pin: &Pin, text: &mut String, out: &mut impl Write) -> std::io::Result<()> {
    text.clear();
    STANDARD_NO_PAD.encode_string(pin_codec::encode_pin(pin, true), text);
    text.push('\n');
    out.write_all(text.as_bytes())
}

/// Why writing a snapshot body failed: the pinset could not be read, or the file written.
#[derive(Debug, thiserror::Error)]
pub(super) enum SnapshotWriteError {
    #[error("{0}")]
    State(#[from] StateError),
    #[error("writing the snapshot file: {0}")]
    File(#[from] std::io::Error),
}

impl SnapshotWriteError {
    pub(super) fn is_io_failure(&self) -> bool {
        match self {
            SnapshotWriteError::State(e) => e.is_io_failure(),
            SnapshotWriteError::File(_) => true,
        }
    }
}

/// A pin of a snapshot body line: the base64 of its binary form, or a JSON object as snapshots
/// of earlier versions hold them.
pub(super) fn pin_of_snapshot_line(line: &str) -> Result<Pin, String> {
    if line.starts_with('{') {
        return serde_json::from_str(line).map_err(|e| e.to_string());
    }
    let bytes = STANDARD_NO_PAD.decode(line).map_err(|e| format!("not base64: {e}"))?;
    pin_codec::decode_pin(&bytes, None).map_err(|e| e.to_string())
}

impl RaftSnapshotBuilder<TypeConfig> for PinsetStateMachine {
    async fn build_snapshot(&mut self) -> Result<Snapshot<TypeConfig>, StorageError<NodeId>> {
        // Durable first: the log is purged up to what this snapshot holds. The store is the
        // snapshot: only its meta is kept, and the body is written when it is sent.
        self.write_state(|| self.state.sync()).await?;
        let (meta, view) = self.read_state(|| self.view_with_meta()).await?;
        let snapshot_id = match &meta.last_log_id {
            Some(log_id) => format!(
                "{}-{}-{}",
                log_id.leader_id,
                log_id.index,
                cluster_rt::random_u64() % 1_000_000
            ),
            None => format!("empty-{}", cluster_rt::random_u64() % 1_000_000),
        };
        let snapshot_meta = SnapshotMeta { snapshot_id, ..meta };
        self.snapshot_io(|| self.snapshots.keep_deferred(&snapshot_meta))
            .await?;
        let body = self.deferred_body(&snapshot_meta, view);
        Ok(Snapshot {
            meta: snapshot_meta,
            snapshot: Box::new(body),
        })
    }
}

/// openraft's snapshot meta, as this crate's types fill it.
type Meta = SnapshotMeta<NodeId, MemberNode>;

impl PinsetStateMachine {
    /// A consistent view of the store, and the snapshot meta of exactly what it holds (no id).
    fn view_with_meta(&self) -> Result<(Meta, Box<dyn StateView>), StateError> {
        let view = self.state.view()?;
        let applied = parse_applied_meta(view.meta()?)?;
        let meta = SnapshotMeta {
            last_log_id: applied.last_applied,
            last_membership: applied.membership,
            snapshot_id: String::new(),
        };
        Ok((meta, view))
    }

    /// The body of the snapshot `meta`, written from `view` when first read: its meta line, then
    /// the pins of the view.
    fn deferred_body(&self, meta: &SnapshotMeta<NodeId, MemberNode>, view: Box<dyn StateView>) -> SnapshotFile {
        let applied = AppliedMeta {
            last_applied: meta.last_log_id,
            membership: meta.last_membership.clone(),
        };
        let id = meta.snapshot_id.clone();
        SnapshotFile::deferred(
            self.snapshots.dir(),
            Box::new(move |file| {
                let began = std::time::Instant::now();
                let mut out = BufWriter::with_capacity(1 << 20, file);
                encode_snapshot(PinIter::of_view(view.as_ref(), 1000), &applied, &mut out)
                    .map_err(std::io::Error::other)?;
                out.flush()?;
                tracing::info!(
                    "wrote the body of raft snapshot {id} to send it, in {:?}",
                    began.elapsed()
                );
                Ok(())
            }),
        )
    }

    /// The snapshot to send now: the store as it is (a consistent view), under a meta naming
    /// exactly the applies it holds, which is at or after the snapshot `kept` openraft built.
    pub(super) fn current_view_snapshot(
        &self,
        kept: SnapshotMeta<NodeId, MemberNode>,
    ) -> Result<Snapshot<TypeConfig>, StateError> {
        let (meta, view) = self.view_with_meta()?;
        let meta = if meta.last_log_id == kept.last_log_id {
            // Nothing applied since it was built: the snapshot built, whose body this is.
            kept
        } else if meta.last_log_id > kept.last_log_id {
            let snapshot_id = match &meta.last_log_id {
                // The same applied log id is the same pinset: the id names the content.
                Some(log_id) => format!("{}-{}-view", log_id.leader_id, log_id.index),
                None => "empty-view".to_string(),
            };
            SnapshotMeta { snapshot_id, ..meta }
        } else {
            // The store lost applies it had made durable: not expected; send what it holds
            // under the kept meta (fuzzy, see the module doc) rather than nothing.
            tracing::warn!(
                "the pinset's applied index {:?} is behind the raft snapshot {:?}",
                meta.last_log_id,
                kept.last_log_id
            );
            kept
        };
        let body = self.deferred_body(&meta, view);
        Ok(Snapshot {
            meta,
            snapshot: Box::new(body),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use cluster_state::MemoryState;

    #[test]
    fn snapshot_bodies_hold_binary_pins_and_json_lines_of_earlier_versions_are_read() {
        let state = MemoryState::new();
        let pins: Vec<Pin> = (0..5).map(cluster_state::testing::test_pin).collect();
        let ops: Vec<StateOp> = pins.iter().cloned().map(StateOp::Add).collect();
        state.commit(&ops, None).unwrap();
        let mut body = Vec::new();
        encode_snapshot(PinIter::new(&state, 1000), &AppliedMeta::default(), &mut body).unwrap();
        let text = String::from_utf8(body).unwrap();
        let lines: Vec<&str> = text.lines().skip(1).collect();
        assert_eq!(lines.len(), 5);
        let mut read: Vec<Pin> = lines.iter().map(|line| pin_of_snapshot_line(line).unwrap()).collect();
        let mut expected = pins.clone();
        read.sort_by_key(|p| p.cid.to_bytes());
        expected.sort_by_key(|p| p.cid.to_bytes());
        assert_eq!(read, expected);
        assert!(
            lines
                .iter()
                .all(|line| line.len() * 2 < serde_json::to_string(&pins[0]).unwrap().len()),
            "{lines:?}"
        );
        let old = serde_json::to_string(&pins[3]).unwrap();
        assert_eq!(pin_of_snapshot_line(&old).unwrap(), pins[3]);
        for bad in ["!!", "AQ", "{\"cid\":7}"] {
            assert!(pin_of_snapshot_line(bad).is_err(), "{bad}");
        }
    }
}
