//! `-perflog`: upstream's performance log — a line per node every interval with the records
//! per second it passed on since the previous line — read from the counters the nodes keep
//! anyway (nothing is counted for it). Written to stderr whatever `-log` says, as upstream
//! writes its perf log whatever the log level.

use std::collections::HashMap;
use std::io::Write;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::pipeline::Live;

/// One interval's lines: `[Perf] <time> <node> rate (records/sec): <rate> (total <n>)`, one
/// per node that has a counter, plus the socket's packets when a socket driver runs.
pub fn lines(
    live: &Live,
    last: &mut HashMap<String, u64>,
    elapsed: Duration,
    now: &str,
) -> Vec<String> {
    let secs = elapsed.as_secs_f64().max(1e-3);
    let mut out = Vec::new();
    let mut rate = |name: &str, total: u64, out: &mut Vec<String>| {
        let before = last.insert(name.to_string(), total).unwrap_or(0);
        let r = total.saturating_sub(before) as f64 / secs;
        out.push(format!(
            "[Perf] {now} {name} rate (records/sec): {r:.0} (total {total})"
        ));
    };
    for s in live.snapshots() {
        rate(&s.name, s.sent_records, &mut out);
    }
    if live.socket_drivers() > 0 {
        let packets = live.socket.packets.load(Ordering::Relaxed);
        rate("socket packets", packets, &mut out);
    }
    out
}

/// Starts the perf log thread; it ends with the process.
pub fn spawn(live: Arc<Live>, every: Duration) {
    let _ = std::thread::Builder::new()
        .name("perflog".into())
        .spawn(move || {
            let mut last = HashMap::new();
            let mut at = Instant::now();
            loop {
                std::thread::sleep(every);
                let now = crate::timefmt::rfc3339_now();
                let elapsed = at.elapsed();
                at = Instant::now();
                if !live.running.load(Ordering::Relaxed) {
                    continue;
                }
                let text = lines(&live, &mut last, elapsed, &now).join("\n");
                let mut err = std::io::stderr().lock();
                let _ = writeln!(err, "{text}");
            }
        });
}

#[cfg(test)]
mod tests {
    use super::*;
    use sfactors::NodeMetrics;

    #[test]
    fn rates_are_per_node_and_since_the_last_line() {
        let live = Live::new();
        let reader = NodeMetrics::new("reader");
        live.add_node(reader.clone(), "sysflowreader", "");
        reader.add_sent(3000);
        let mut last = HashMap::new();
        let l = lines(&live, &mut last, Duration::from_secs(2), "T");
        assert_eq!(
            l,
            vec!["[Perf] T reader rate (records/sec): 1500 (total 3000)"]
        );
        reader.add_sent(500);
        let l = lines(&live, &mut last, Duration::from_secs(1), "T");
        assert_eq!(
            l,
            vec!["[Perf] T reader rate (records/sec): 500 (total 3500)"]
        );
    }
}
