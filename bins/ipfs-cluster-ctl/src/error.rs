//! Why a command failed, how that failure is shown, and which exit code it maps to.
//!
//! Go's ctl has three ways out (`cmd/ipfs-cluster-ctl/main.go`): `formatResponse` prints an
//! `api.Error` on stdout (exit 2, or 1 when its code is 0, which is how the Go client reports a
//! transport failure); `checkErr` prints `error <doing>: <err>` on stderr (exit 1, or 62 for a
//! deadline, 125 for a cancellation). We keep the same split so scripts see the same codes.

use cluster_types::ApiError;

/// Exit code for success.
pub const EXIT_OK: i32 = 0;
/// Exit code for transport, parse and usage errors (and API errors with code 0).
pub const EXIT_ERROR: i32 = 1;
/// Exit code when the API answered with an error object.
pub const EXIT_API_ERROR: i32 = 2;
/// Exit code when a deadline (`--timeout`, `--wait-timeout`) passed: ETIME, as Go.
pub const EXIT_DEADLINE: i32 = 62;

/// A failed command.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CtlError {
    /// The API answered with an error object, or (code 0) the request never got an answer.
    #[error("{0}")]
    Api(ApiError),
    /// A deadline passed while `doing` something; `note` (a line of its own) says what that
    /// leaves behind, e.g. that a pin stays in the pinset.
    #[error("error {doing}: context deadline exceeded{}", note.as_deref().map(|n| format!("\n{n}")).unwrap_or_default())]
    Deadline {
        /// What was being done, e.g. `waiting for pin status`.
        doing: String,
        /// What the deadline does not undo.
        note: Option<String>,
    },
    /// Whoever read the output went away (`ipfs-cluster-ctl pin ls | head`): nothing more to
    /// say, and not a failure of the command.
    #[error("the output was closed")]
    OutputClosed,
    /// A local problem: bad arguments, an undecodable response, a failed write.
    #[error("error {doing}: {message}")]
    Local {
        /// What was being done, e.g. `parsing cid`.
        doing: String,
        /// Why it failed.
        message: String,
    },
}

impl CtlError {
    /// A local failure while `doing` something.
    pub fn local(doing: &str, message: impl std::fmt::Display) -> CtlError {
        CtlError::Local {
            doing: doing.to_string(),
            message: message.to_string(),
        }
    }

    /// A transport failure, reported like the Go client does: an API error with code 0.
    pub fn transport(message: impl std::fmt::Display) -> CtlError {
        CtlError::Api(ApiError {
            code: 0,
            message: message.to_string(),
        })
    }

    /// A failed write of the command's output; a closed pipe is [`CtlError::OutputClosed`].
    pub fn writing(error: std::io::Error) -> CtlError {
        if error.kind() == std::io::ErrorKind::BrokenPipe {
            return CtlError::OutputClosed;
        }
        CtlError::local("writing output", error)
    }

    /// The process exit code for this failure.
    pub fn exit_code(&self) -> i32 {
        match self {
            // Go: `if cerr.Code == 0 { os.Exit(1) } else { os.Exit(2) }`.
            CtlError::Api(error) if error.code == 0 => EXIT_ERROR,
            CtlError::Api(_) => EXIT_API_ERROR,
            CtlError::Deadline { .. } => EXIT_DEADLINE,
            CtlError::Local { .. } => EXIT_ERROR,
            CtlError::OutputClosed => EXIT_OK,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exit_codes_follow_go() {
        let api = CtlError::Api(ApiError {
            code: 404,
            message: "pin is not part of the pinset".into(),
        });
        assert_eq!(api.exit_code(), 2);
        let transport = CtlError::transport("connection refused");
        assert_eq!(transport.exit_code(), 1);
        let deadline = CtlError::Deadline {
            doing: "waiting for pin status".into(),
            note: None,
        };
        assert_eq!(deadline.exit_code(), 62);
        assert_eq!(
            deadline.to_string(),
            "error waiting for pin status: context deadline exceeded"
        );
        let noted = CtlError::Deadline {
            doing: "waiting for pin status".into(),
            note: Some("it goes on".into()),
        };
        assert_eq!(
            noted.to_string(),
            "error waiting for pin status: context deadline exceeded\nit goes on"
        );
        let closed = CtlError::writing(std::io::Error::from(std::io::ErrorKind::BrokenPipe));
        assert_eq!(closed, CtlError::OutputClosed);
        assert_eq!(closed.exit_code(), 0);
        let local = CtlError::local("parsing cid", "cid too short");
        assert_eq!(local.exit_code(), 1);
        assert_eq!(local.to_string(), "error parsing cid: cid too short");
    }
}
