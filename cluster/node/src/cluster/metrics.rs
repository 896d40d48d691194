//! This member's metrics (the informers), the metrics and alerts of the others, and the RPC
//! traffic counters.

use super::*;

impl Cluster {
    /// Every `monitor.check_interval`, raises an alert for each member whose latest metric has
    /// expired without a newer one (Go's monitor checker); `/health/alerts` lists them.
    pub(super) fn spawn_alert_checker(self: &Arc<Self>) {
        let cluster = self.clone();
        let mut shutdown = self.shutdown_tx.subscribe();
        cluster_rt::spawn(async move {
            loop {
                cluster_rt::tokio::select! {
                    biased;
                    _ = shutdown.changed() => return,
                    _ = cluster_rt::sleep(cluster.config.monitor.check_interval) => {}
                }
                let raised = cluster
                    .metrics
                    .lock()
                    .expect("metrics lock")
                    .check_expired(Timestamp::now());
                for alert in raised {
                    tracing::warn!(
                        peer = %alert.metric.peer,
                        "alert: metric {} expired without a newer one",
                        alert.metric.name
                    );
                }
            }
        });
    }

    /// RPC traffic of this member (Go reports libp2p's per-protocol counters): totals since
    /// start and rates over the time since the previous reading (kept if that was under 1 s).
    pub fn bandwidth(&self) -> BTreeMap<String, Bandwidth> {
        let Some(rpc) = &self.rpc else {
            return BTreeMap::new();
        };
        let totals = rpc.traffic();
        let now = cluster_rt::now();
        let mut sample = self.traffic_sample.lock().expect("traffic lock");
        let rates = match *sample {
            Some(previous) if now.duration_since(previous.at) < Duration::from_secs(1) => previous.rates,
            Some(previous) => {
                let seconds = now.duration_since(previous.at).as_secs_f64();
                let rates = (
                    totals.bytes_in.saturating_sub(previous.totals.bytes_in) as f64 / seconds,
                    totals.bytes_out.saturating_sub(previous.totals.bytes_out) as f64 / seconds,
                );
                *sample = Some(TrafficSample { at: now, totals, rates });
                rates
            }
            None => {
                *sample = Some(TrafficSample {
                    at: now,
                    totals,
                    rates: (0.0, 0.0),
                });
                (0.0, 0.0)
            }
        };
        BTreeMap::from([(
            cluster_rpc::wire::PROTOCOL.to_string(),
            Bandwidth {
                total_in: totals.bytes_in.min(i64::MAX as u64) as i64,
                total_out: totals.bytes_out.min(i64::MAX as u64) as i64,
                rate_in: rates.0,
                rate_out: rates.1,
            },
        )])
    }

    /// The alerts raised so far, newest first.
    pub fn alerts(&self) -> Vec<Alert> {
        self.metrics.lock().expect("metrics lock").alerts()
    }

    /// Publishes this member's metrics every half `metric_ttl`, as Go's informers do, in two
    /// loops: the liveness metrics (`ping`, tags, `pinqueue`) never wait on the IPFS daemon, so a
    /// slow `repo/stat` cannot make a healthy member look dead; `freespace` is measured on its
    /// own, again after a quarter `metric_ttl` when the daemon failed to answer.
    pub(super) fn spawn_informer(self: &Arc<Self>) {
        let cluster = self.clone();
        let mut shutdown = self.shutdown_tx.subscribe();
        cluster_rt::spawn(async move {
            loop {
                cluster.publish_liveness();
                cluster_rt::tokio::select! {
                    biased;
                    _ = shutdown.changed() => return,
                    _ = cluster_rt::sleep(cluster.config.monitor.metric_ttl / 2) => {}
                }
            }
        });
        let cluster = self.clone();
        let mut shutdown = self.shutdown_tx.subscribe();
        cluster_rt::spawn(async move {
            loop {
                let next = if cluster.publish_freespace().await {
                    cluster.config.monitor.metric_ttl / 2
                } else {
                    cluster.config.monitor.metric_ttl / 4
                };
                cluster_rt::tokio::select! {
                    biased;
                    _ = shutdown.changed() => return,
                    _ = cluster_rt::sleep(next) => {}
                }
            }
        });
    }

    /// Who measures this member's metrics, now, and for how long they stay valid.
    pub(super) fn measured_now(&self) -> Measured {
        Measured {
            peer: self.identity.peer_id,
            now: Timestamp::now(),
            ttl: self.config.monitor.metric_ttl,
        }
    }

    /// Measures and publishes every metric of this member (Go's informers: `freespace` from
    /// `repo/stat`, `ping`, one `tag:<name>` per configured tag, `pinqueue`). Returns whether
    /// free space could be measured.
    pub async fn publish_metrics(&self) -> bool {
        self.publish_liveness();
        self.publish_freespace().await
    }

    /// Publishes `ping`, the tags and `pinqueue`: what this member knows without asking the
    /// daemon.
    pub(super) fn publish_liveness(&self) {
        let ipfs = self.ipfs_identity.lock().expect("ipfs identity lock").clone();
        let measured = self.measured_now();
        let mut metrics = vec![informers::ping(&measured, &self.config.cluster.peername, ipfs.as_ref())];
        metrics.extend(informers::tags(&measured, &self.config.monitor.tags));
        metrics.push(informers::pinqueue(
            &measured,
            self.tracker.queued_count() as u64,
            self.config.monitor.pinqueue_weight_bucket_size,
        ));
        self.publish(metrics);
    }

    /// Measures free space through the daemon's `repo/stat` and publishes it; returns whether
    /// the daemon answered. The metric's lifetime starts when the answer came, not when it was
    /// asked.
    pub(super) async fn publish_freespace(&self) -> bool {
        match self.ipfs.repo_stat().await {
            Ok(stat) => {
                let mut freespace = informers::freespace(&self.measured_now(), stat.repo_size, stat.storage_max);
                // A member that cannot do its work is no candidate for new pins.
                if let Err(why) = self.health() {
                    tracing::debug!("freespace informer: not taking pins: {why}");
                    freespace.valid = false;
                }
                self.publish(vec![freespace]);
                true
            }
            Err(e) => {
                tracing::debug!("freespace informer: {e}");
                false
            }
        }
    }

    /// Records `metrics` and sends them to every other member without waiting for them.
    pub(super) fn publish(&self, metrics: Vec<Metric>) {
        let mut store = self.metrics.lock().expect("metrics lock");
        for metric in &metrics {
            store.record(metric.clone());
        }
        drop(store);
        let Some(rpc) = &self.rpc else { return };
        for member in self.members() {
            if member.peer_id == self.me_member.peer_id {
                continue;
            }
            let (rpc, metrics, timeout) = (rpc.clone(), metrics.clone(), self.config.raft.network_timeout);
            cluster_rt::spawn(async move {
                for metric in metrics {
                    if let Err(e) = rpc.call(&member, RpcRequest::PushMetric(metric), timeout).await {
                        tracing::debug!("sending metrics to {member}: {e:?}");
                        return;
                    }
                }
            });
        }
    }

    /// Every member's latest metric named `name` that has not expired.
    pub fn fresh_metrics(&self, name: &str) -> Vec<Metric> {
        self.metrics.lock().expect("metrics lock").fresh(name, Timestamp::now())
    }

    /// The names of every metric this member has received, sorted.
    pub fn metric_names(&self) -> Vec<String> {
        self.metrics.lock().expect("metrics lock").names()
    }
}

/// One reading of the transport's traffic counters.
#[derive(Debug, Clone, Copy)]
pub(super) struct TrafficSample {
    pub(super) at: cluster_rt::tokio::time::Instant,
    pub(super) totals: Traffic,
    pub(super) rates: (f64, f64),
}
