//! The metrics of a running pipeline in the Prometheus/OpenMetrics text format. The values
//! live in the pipeline's own atomics ([`Live`]); a collector reads them at scrape time, so
//! nothing is counted twice and nothing is kept for the endpoint. Names follow the Prometheus
//! conventions: a `sfprocessor_` prefix, `_total` on counters, base units (`_bytes`,
//! `_seconds`). The list is in `docs/operations.md`.

use std::sync::atomic::Ordering;
use std::sync::Arc;

use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, NoLabelSet};
use prometheus_client::metrics::MetricType;
use prometheus_client::registry::{Registry, Unit};

use crate::pipeline::Live;
use crate::stats::BadPacket;

/// Reads a [`Live`] view at every scrape.
#[derive(Clone)]
pub struct LiveCollector {
    live: Arc<Live>,
}

impl std::fmt::Debug for LiveCollector {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("LiveCollector")
    }
}

type Labels<'a> = Vec<(&'static str, &'a str)>;

/// A node counter: name, help, and how to read it from a snapshot.
type NodeCounter = (
    &'static str,
    &'static str,
    fn(&sfactors::MetricsSnapshot) -> u64,
);

/// One metric family: a descriptor and its samples.
fn family<V: Copy>(
    enc: &mut DescriptorEncoder,
    name: &str,
    help: &str,
    unit: Option<Unit>,
    kind: MetricType,
    samples: &[(Labels<'_>, V)],
    write: impl Fn(&mut prometheus_client::encoding::MetricEncoder, V) -> std::fmt::Result,
) -> std::fmt::Result {
    let mut m = enc.encode_descriptor(name, help, unit.as_ref(), kind)?;
    for (labels, v) in samples {
        if labels.is_empty() {
            write(&mut m, *v)?;
        } else {
            let mut e = m.encode_family(labels)?;
            write(&mut e, *v)?;
        }
    }
    Ok(())
}

fn counters(
    enc: &mut DescriptorEncoder,
    name: &str,
    help: &str,
    unit: Option<Unit>,
    samples: &[(Labels<'_>, u64)],
) -> std::fmt::Result {
    family(
        enc,
        name,
        help,
        unit,
        MetricType::Counter,
        samples,
        |e, v| e.encode_counter::<NoLabelSet, _, u64>(&v, None),
    )
}

fn gauges<V: prometheus_client::encoding::EncodeGaugeValue + Copy>(
    enc: &mut DescriptorEncoder,
    name: &str,
    help: &str,
    unit: Option<Unit>,
    samples: &[(Labels<'_>, V)],
) -> std::fmt::Result {
    family(enc, name, help, unit, MetricType::Gauge, samples, |e, v| {
        e.encode_gauge(&v)
    })
}

/// Resident memory of this process (Linux `/proc/self/statm`), in bytes.
fn resident_bytes() -> Option<u64> {
    let s = std::fs::read_to_string("/proc/self/statm").ok()?;
    let pages: u64 = s.split_whitespace().nth(1)?.parse().ok()?;
    Some(pages * 4096)
}

impl Collector for LiveCollector {
    fn encode(&self, mut enc: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let live = &self.live;
        let nodes = live.nodes();
        let snaps: Vec<_> = nodes.iter().map(|n| n.metrics.snapshot()).collect();
        let labels = |i: usize| -> Labels<'_> {
            vec![
                ("node", snaps[i].name.as_str()),
                ("stage", nodes[i].stage.as_str()),
                ("exporter", nodes[i].exporter.as_str()),
            ]
        };
        let per_node = |f: &dyn Fn(&sfactors::MetricsSnapshot) -> u64| -> Vec<(Labels<'_>, u64)> {
            (0..snaps.len())
                .map(|i| (labels(i), f(&snaps[i])))
                .collect()
        };
        let node_counters: [NodeCounter; 9] = [
            (
                "node_received_records",
                "Records that arrived at the node.",
                |s| s.received_records,
            ),
            (
                "node_received_batches",
                "Batches that arrived at the node.",
                |s| s.received_batches,
            ),
            (
                "node_sent_records",
                "Records the node handed on; for exporters, records the target acknowledged.",
                |s| s.sent_records,
            ),
            (
                "node_dropped_records",
                "Records dropped on purpose (when_full: drop_newest) or lost to a panic.",
                |s| s.dropped_records,
            ),
            (
                "node_failed_records",
                "Records an exporter could not deliver.",
                |s| s.failed_records,
            ),
            (
                "node_retried_records",
                "Records in delivery attempts that failed and were tried again.",
                |s| s.retried_records,
            ),
            (
                "node_errors",
                "Batches that failed without a restart.",
                |s| s.errors,
            ),
            ("node_dead_letters", "Batches lost to a panic.", |s| {
                s.dead_letters
            }),
            ("node_restarts", "Restarts after panics.", |s| s.restarts),
        ];
        for (name, help, f) in node_counters {
            counters(&mut enc, name, help, None, &per_node(&f))?;
        }
        gauges(
            &mut enc,
            "node_queued_batches",
            "Batches sent to the node and not yet handled (queue depth).",
            None,
            &per_node(&|s| s.queued),
        )?;

        let exps = live.exporters();
        let ex_labels = |i: usize| -> Labels<'_> {
            vec![
                ("node", exps[i].node.as_str()),
                ("exporter", exps[i].exporter.as_str()),
            ]
        };
        gauges(
            &mut enc,
            "exporter_queue",
            "Encoded bytes waiting in the exporter's delivery queue.",
            Some(Unit::Bytes),
            &(0..exps.len())
                .map(|i| (ex_labels(i), exps[i].stats.queue_bytes()))
                .collect::<Vec<_>>(),
        )?;
        gauges(
            &mut enc,
            "exporter_last_success_timestamp",
            "When the target last acknowledged a batch (Unix time; 0: never).",
            Some(Unit::Seconds),
            &(0..exps.len())
                .map(|i| (ex_labels(i), exps[i].stats.last_success().unwrap_or(0.0)))
                .collect::<Vec<_>>(),
        )?;
        // Disk queues (`queue.type: disk`): only exporters that have one.
        let disk: Vec<(usize, &crate::queue::QueueStats)> = (0..exps.len())
            .filter_map(|i| exps[i].stats.disk_queue().map(|q| (i, q)))
            .collect();
        if !disk.is_empty() {
            let load = |a: &std::sync::atomic::AtomicU64| a.load(Ordering::Relaxed);
            let per_queue = |f: &dyn Fn(&crate::queue::QueueStats) -> u64| {
                disk.iter()
                    .map(|(i, q)| (ex_labels(*i), f(q)))
                    .collect::<Vec<_>>()
            };
            gauges(
                &mut enc,
                "exporter_disk_queue",
                "Bytes the exporter's disk queue segments take.",
                Some(Unit::Bytes),
                &per_queue(&|q| load(&q.bytes)),
            )?;
            gauges(
                &mut enc,
                "exporter_disk_queue_records",
                "Records in the disk queue not yet acknowledged by the target.",
                None,
                &per_queue(&|q| load(&q.records)),
            )?;
            gauges(
                &mut enc,
                "exporter_disk_queue_segments",
                "Segment files of the disk queue.",
                None,
                &per_queue(&|q| load(&q.segments)),
            )?;
            gauges(
                &mut enc,
                "exporter_disk_queue_oldest_age",
                "Age of the oldest unacknowledged record in the disk queue (0: empty).",
                Some(Unit::Seconds),
                &disk
                    .iter()
                    .map(|(i, q)| (ex_labels(*i), q.oldest_age().as_secs_f64()))
                    .collect::<Vec<_>>(),
            )?;
            for (name, help, f) in [
                (
                    "exporter_disk_queue_recovered_records",
                    "Records found in the disk queue at start (the previous run's backlog).",
                    (|q: &crate::queue::QueueStats| q.recovered.load(Ordering::Relaxed))
                        as fn(&crate::queue::QueueStats) -> u64,
                ),
                (
                    "exporter_disk_queue_torn_records",
                    "Torn records (a write cut by a crash) cut off the queue at start.",
                    |q| q.torn.load(Ordering::Relaxed),
                ),
                (
                    "exporter_disk_queue_damaged",
                    "Damaged stretches of the disk queue skipped (each lost at least one record).",
                    |q| q.damaged.load(Ordering::Relaxed),
                ),
                (
                    "exporter_disk_queue_full",
                    "Appends that found the disk queue full or its disk failing.",
                    |q| q.full_events.load(Ordering::Relaxed),
                ),
            ] {
                counters(&mut enc, name, help, None, &per_queue(&f))?;
            }
        }
        gauges(
            &mut enc,
            "exporter_up",
            "1 unless the exporter's target is down: its last delivery attempt failed, an attempt has waited 3 s for its acknowledgement, or the transport reports no connection (Kafka).",
            None,
            &(0..exps.len())
                .map(|i| (ex_labels(i), exps[i].stats.up() as u64))
                .collect::<Vec<_>>(),
        )?;

        let t = &live.tables;
        let tables: Vec<(Labels<'_>, u64)> = [
            ("processes", &t.processes),
            ("files", &t.files),
            ("containers", &t.containers),
            ("pods", &t.pods),
        ]
        .into_iter()
        .map(|(n, v)| (vec![("table", n)], v.load(Ordering::Relaxed)))
        .collect();
        gauges(
            &mut enc,
            "entities",
            "Entities held in the tables.",
            None,
            &tables,
        )?;
        gauges(
            &mut enc,
            "entity_bytes",
            "Bytes the entity tables hold (estimated from their strings and arrays; bounded by cache.maxbytes).",
            None,
            &[(vec![], t.bytes.load(Ordering::Relaxed))],
        )?;
        counters(
            &mut enc,
            "entity_evictions",
            "Entities evicted by the table limits (cache.max*).",
            None,
            &[(vec![], t.evictions.load(Ordering::Relaxed))],
        )?;
        counters(
            &mut enc,
            "entity_reaped",
            "Exited processes removed after their grace period (cache.reapafter).",
            None,
            &[(vec![], t.reaped.load(Ordering::Relaxed))],
        )?;
        counters(
            &mut enc,
            "rate_limited_records",
            "Records dropped by the rate limiter (filter.enabled: a key seen within filter.maxage).",
            None,
            &[(vec![], t.rate_limited.load(Ordering::Relaxed))],
        )?;
        counters(
            &mut enc,
            "entity_resets",
            "Header records (each resets the tables).",
            None,
            &[(vec![], t.resets.load(Ordering::Relaxed))],
        )?;

        let s = &live.socket;
        gauges(
            &mut enc,
            "socket_listening",
            "1 while the socket driver accepts connections.",
            None,
            &[(vec![], s.listening.load(Ordering::Relaxed))],
        )?;
        gauges(
            &mut enc,
            "socket_connected",
            "Collectors connected now (1 with one socket driver).",
            None,
            &[(vec![], s.connected.load(Ordering::Relaxed))],
        )?;
        counters(
            &mut enc,
            "socket_connections",
            "Collector connections accepted.",
            None,
            &[(vec![], s.connections.load(Ordering::Relaxed))],
        )?;
        counters(
            &mut enc,
            "socket_packets",
            "Packets received on the socket.",
            None,
            &[(vec![], s.packets.load(Ordering::Relaxed))],
        )?;
        counters(
            &mut enc,
            "socket_received",
            "Bytes received on the socket.",
            Some(Unit::Bytes),
            &[(vec![], s.bytes.load(Ordering::Relaxed))],
        )?;
        counters(
            &mut enc,
            "socket_bad_packets",
            "Packets not used, by reason (decode, truncated, no_header, version).",
            None,
            &BadPacket::ALL
                .iter()
                .map(|b| (vec![("reason", b.label())], s.bad(*b)))
                .collect::<Vec<_>>(),
        )?;

        let pols = live.policies();
        let mut reloads = Vec::new();
        let mut rules = Vec::new();
        let mut eval = Vec::new();
        let mut warnings = Vec::new();
        let sets: Vec<_> = pols.iter().map(|p| p.handle.current()).collect();
        for (p, set) in pols.iter().zip(&sets) {
            reloads.push((
                vec![("node", p.node.as_str()), ("result", "ok")],
                p.handle.reloads.ok.load(Ordering::Relaxed),
            ));
            reloads.push((
                vec![("node", p.node.as_str()), ("result", "failed")],
                p.handle.reloads.failed.load(Ordering::Relaxed),
            ));
            for r in &set.rules {
                rules.push((
                    vec![("node", p.node.as_str()), ("rule", &*r.name)],
                    r.matches.load(Ordering::Relaxed),
                ));
                eval.push((
                    vec![("node", p.node.as_str()), ("rule", &*r.name)],
                    r.eval_nanos.load(Ordering::Relaxed),
                ));
            }
            for (code, n) in set.warning_counts() {
                warnings.push((vec![("node", p.node.as_str()), ("code", code)], n as u64));
            }
        }
        counters(
            &mut enc,
            "policy_reloads",
            "Policy hot reloads, by result (failed: the previous rules stayed).",
            None,
            &reloads,
        )?;
        counters(
            &mut enc,
            "rule_matches",
            "Records each rule matched.",
            None,
            &rules,
        )?;
        counters(
            &mut enc,
            "rule_evaluation_nanoseconds",
            "Time spent evaluating each rule's condition (sampled: one record in 1024 per shard, scaled).",
            None,
            &eval,
        )?;
        gauges(
            &mut enc,
            "policy_warnings",
            "Warnings of the policy set in force, by code (docs/policy-language.md).",
            None,
            &warnings,
        )?;

        gauges(
            &mut enc,
            "process_resident_memory",
            "Resident memory of the agent.",
            Some(Unit::Bytes),
            &[(vec![], resident_bytes().unwrap_or(0))],
        )?;
        let info = enc.encode_descriptor(
            "build",
            "The agent's version and driver.",
            None,
            MetricType::Info,
        )?;
        let mut info = info;
        let driver = live.driver();
        info.encode_info(&vec![
            ("version", env!("CARGO_PKG_VERSION")),
            ("driver", driver.as_str()),
        ])?;
        Ok(())
    }
}

/// A registry with the live collector, prefix `sfprocessor`.
pub fn registry(live: Arc<Live>) -> Registry {
    let mut r = Registry::with_prefix("sfprocessor");
    r.register_collector(Box::new(LiveCollector { live }));
    r
}

/// The exposition text (OpenMetrics).
pub fn render(r: &Registry) -> String {
    let mut out = String::new();
    if prometheus_client::encoding::text::encode(&mut out, r).is_err() {
        out.clear();
        out.push_str("# EOF\n");
    }
    out
}

/// The content type of [`render`]'s text.
pub const CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_exposition_names_counters_with_total_and_units() {
        let live = Live::new();
        let m = sfactors::NodeMetrics::new("exporter[2]");
        m.add_received(7);
        m.add_sent(5);
        live.add_node(m, "exporter", "syslog");
        let st = Arc::new(crate::stats::ExporterStats::default());
        st.add_queue_bytes(1234);
        live.add_exporter("exporter[2]", "syslog", st);
        live.socket.add_bad(BadPacket::Truncated);
        let text = render(&registry(live));
        for want in [
            "sfprocessor_node_received_records_total{node=\"exporter[2]\",stage=\"exporter\",exporter=\"syslog\"} 7",
            "sfprocessor_node_sent_records_total{node=\"exporter[2]\",stage=\"exporter\",exporter=\"syslog\"} 5",
            "sfprocessor_exporter_queue_bytes{node=\"exporter[2]\",exporter=\"syslog\"} 1234",
            "sfprocessor_socket_bad_packets_total{reason=\"truncated\"} 1",
            "# TYPE sfprocessor_exporter_last_success_timestamp_seconds gauge",
            "sfprocessor_build_info{version=",
            "# EOF",
        ] {
            assert!(text.contains(want), "missing `{want}` in:\n{text}");
        }
    }
}
