//! The end of a run: per-node and per-rule summaries on stderr, and the exit code.

use std::sync::atomic::Ordering;

use super::exit::Exit;
use crate::pipeline;
use crate::stats::BadPacket;

/// Per-rule match counts and evaluation time of each policy stage (log lines on stderr):
/// every rule that matched, and the ten slowest rules.
pub fn rule_summary(live: &pipeline::Live) {
    for p in live.policies() {
        let set = p.handle.current();
        let mut rows: Vec<(u64, u64, &str)> = set
            .rules
            .iter()
            .map(|r| {
                (
                    r.eval_nanos.load(Ordering::Relaxed),
                    r.matches.load(Ordering::Relaxed),
                    &*r.name,
                )
            })
            .collect();
        rows.sort_by(|a, b| b.0.cmp(&a.0).then(b.1.cmp(&a.1)));
        for (i, (ns, matches, name)) in rows.iter().enumerate() {
            if *matches > 0 || i < 10 {
                tracing::info!(
                    node = %p.node,
                    rule = name,
                    matches,
                    eval_ms = format!("{:.3}", *ns as f64 / 1e6),
                    "rule summary"
                );
            }
        }
    }
}

/// Prints the end-of-run summary on stderr and picks the exit code.
pub fn summarize(outcome: &pipeline::RunOutcome, live: &pipeline::Live) -> Exit {
    for m in &outcome.metrics {
        tracing::info!(
            node = %m.name,
            received = m.received_records,
            sent = m.sent_records,
            dropped = m.dropped_records,
            retried = m.retried_records,
            failed = m.failed_records,
            errors = m.errors,
            dead_letters = m.dead_letters,
            restarts = m.restarts,
            "node summary"
        );
    }
    rule_summary(live);
    if let Some(f) = &outcome.failure {
        eprintln!("sfprocessor: pipeline failed: {f}");
        return Exit::Pipeline;
    }
    let in_flight = outcome.in_flight();
    if outcome.abandoned {
        eprintln!(
            "sfprocessor: stopped by a signal; the pipeline had not drained {} after the drain timeout, so the run was abandoned",
            humantime::format_duration(pipeline::ABANDON_GRACE)
        );
        for (node, n) in &in_flight {
            eprintln!("  - {node}: {n} records not delivered (in flight when abandoned)");
        }
        let queued: u64 = outcome.metrics.iter().map(|m| m.queued).sum();
        if queued > 0 {
            eprintln!("  - {queued} batches still queued between stages were not processed");
        }
    }
    let undelivered: Vec<String> = outcome
        .metrics
        .iter()
        .filter(|m| m.dropped_records + m.failed_records > 0)
        .map(|m| {
            format!(
                "{}: {} records not delivered ({} failed, {} dropped)",
                m.name,
                m.dropped_records + m.failed_records,
                m.failed_records,
                m.dropped_records
            )
        })
        .collect();
    if !undelivered.is_empty() {
        eprintln!("sfprocessor: finished with undelivered records:");
        for u in &undelivered {
            eprintln!("  - {u}");
        }
    }
    // A disk queue's backlog is kept, not lost: it goes out first at the next start.
    for e in live.exporters() {
        if let Some(q) = e.stats.disk_queue() {
            let left = q.records.load(Ordering::Relaxed);
            if left > 0 {
                eprintln!(
                    "sfprocessor: {} ({}): {left} records left in the disk queue {}; they are delivered first at the next start",
                    e.node, e.exporter, q.path
                );
            }
            let (torn, damaged) = (
                q.torn.load(Ordering::Relaxed),
                q.damaged.load(Ordering::Relaxed),
            );
            if torn + damaged > 0 {
                eprintln!(
                    "sfprocessor: {} ({}): disk queue {}: {torn} torn record(s) cut, {damaged} damaged stretch(es) skipped (see the log for positions)",
                    e.node, e.exporter, q.path
                );
            }
        }
    }
    if live.socket_drivers() > 0 {
        let st = &live.socket;
        let bad = st.bad_total();
        eprintln!(
            "sfprocessor: socket: {} connection(s), {} packet(s), {} bad ({})",
            st.connections.load(Ordering::Relaxed),
            st.packets.load(Ordering::Relaxed),
            bad,
            BadPacket::ALL
                .iter()
                .map(|b| format!("{} {}", b.label(), st.bad(*b)))
                .collect::<Vec<_>>()
                .join(", ")
        );
        // Bad packets are the collector's (or an intruder's) problem, counted above and in
        // the metrics: they do not make a stop whose every record was delivered a failure.
        if bad > 0 {
            eprintln!("sfprocessor: {bad} socket packet(s) were not used (see the counts above)");
        }
    }
    if !outcome.skipped.is_empty() {
        eprintln!(
            "sfprocessor: finished with skipped input ({} problem(s)):",
            outcome.skipped.len()
        );
        for s in &outcome.skipped {
            eprintln!("  - {s}");
        }
        return Exit::Incomplete;
    }
    if !undelivered.is_empty() || outcome.abandoned {
        return Exit::Incomplete;
    }
    Exit::Ok
}
