//! A running hash of what happened in a simulation, printed at the end of each run: the same
//! seed must give the same hash (determinism), and a different seed a different one.

/// FNV-1a 64 over the events fed to it, in order.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TraceHash(u64);

impl Default for TraceHash {
    fn default() -> Self {
        TraceHash(0xcbf2_9ce4_8422_2325)
    }
}

impl TraceHash {
    /// Adds one event (its text) to the trace.
    /// Also logged (`RUST_LOG=cluster_sim=info`), so a replay shows the workload's steps.
    pub fn record(&mut self, event: &str) {
        tracing::info!("workload: {event}");
        for byte in event.as_bytes().iter().chain(b"\n") {
            self.0 ^= *byte as u64;
            self.0 = self.0.wrapping_mul(0x0100_0000_01b3);
        }
    }

    /// The hash so far, as printed.
    pub fn hex(&self) -> String {
        format!("{:016x}", self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn order_matters() {
        let mut a = TraceHash::default();
        a.record("x");
        a.record("y");
        let mut b = TraceHash::default();
        b.record("y");
        b.record("x");
        assert_ne!(a, b);
        let mut c = TraceHash::default();
        c.record("x");
        c.record("y");
        assert_eq!(a.hex(), c.hex());
    }
}
