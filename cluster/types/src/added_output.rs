//! One line of `POST /add` output (Go `api.AddedOutput`): a file or directory added, or with
//! `progress=true` how many bytes of a file were read so far.

use serde::{Deserialize, Serialize};

use crate::{Cid, PeerId};

/// One line of add output.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AddedOutput {
    /// The entry's path as uploaded; "" for a wrapping directory.
    #[serde(default)]
    pub name: String,
    /// The entry's CID; `null` on progress lines.
    #[serde(default)]
    pub cid: Option<Cid>,
    /// Bytes read so far (progress lines) or in total (CAR imports).
    #[serde(default, skip_serializing_if = "is_zero")]
    pub bytes: u64,
    /// Cumulative size of the entry's DAG.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub size: u64,
    /// The members that received the blocks.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub allocations: Vec<PeerId>,
}

fn is_zero(value: &u64) -> bool {
    *value == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_matches_go() {
        let cid: Cid = "QmVaUYQRqkBqYoBxokHPmrACbzn8WsiJKKkNZK45NCmEA9".parse().unwrap();
        let line = AddedOutput {
            name: "hello.txt".into(),
            cid: Some(cid),
            bytes: 0,
            size: 32,
            allocations: Vec::new(),
        };
        assert_eq!(
            serde_json::to_string(&line).unwrap(),
            format!(r#"{{"name":"hello.txt","cid":"{cid}","size":32}}"#)
        );
        let progress = AddedOutput {
            name: "big".into(),
            cid: None,
            bytes: 262144,
            size: 0,
            allocations: Vec::new(),
        };
        assert_eq!(
            serde_json::to_string(&progress).unwrap(),
            r#"{"name":"big","cid":null,"bytes":262144}"#
        );
    }
}
