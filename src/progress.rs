//! A progress bar for long file runs (`sfprocessor` and `sfprint` on files): bytes read of
//! the total, records/s, alerts so far and the time left, on stderr. It is drawn only when
//! stderr is a terminal and logging is not `quiet`, so logs, pipes and CI output never get
//! escape codes, and stdout (the records) is never touched.

use std::io::IsTerminal;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

/// What the bar reads while the run goes on (written by the run, read every tick).
#[derive(Debug, Default)]
pub struct Counters {
    pub bytes: Arc<AtomicU64>,
    pub records: Arc<AtomicU64>,
    pub alerts: Arc<AtomicU64>,
}

/// One reading: bytes read, records read, alerts so far.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Sample {
    pub bytes: u64,
    pub records: u64,
    pub alerts: u64,
}

impl Counters {
    /// A sampler over these counters (for [`Progress::start`]).
    pub fn sampler(&self) -> impl Fn() -> Sample + Send + 'static {
        let (b, r, a) = (
            self.bytes.clone(),
            self.records.clone(),
            self.alerts.clone(),
        );
        move || Sample {
            bytes: b.load(Ordering::Relaxed),
            records: r.load(Ordering::Relaxed),
            alerts: a.load(Ordering::Relaxed),
        }
    }
}

/// Whether a bar is wanted: stderr is a terminal and the user did not ask for quiet.
pub fn wanted(quiet: bool) -> bool {
    !quiet && std::io::stderr().is_terminal()
}

/// A running bar; [`Progress::finish`] (or drop) clears it.
pub struct Progress {
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

/// The counters as text: records, records/s, alerts.
fn message(records: u64, alerts: u64, elapsed: Duration) -> String {
    let rate = records as f64 / elapsed.as_secs_f64().max(1e-3);
    format!("{records} records, {} rec/s, {alerts} alerts", human(rate))
}

fn human(v: f64) -> String {
    if v >= 1e6 {
        format!("{:.2}M", v / 1e6)
    } else if v >= 1e3 {
        format!("{:.1}k", v / 1e3)
    } else {
        format!("{v:.0}")
    }
}

impl Progress {
    /// Starts a bar over `total` bytes fed by `sample`, redrawn 5 times a second.
    pub fn start(total: u64, sample: impl Fn() -> Sample + Send + 'static) -> Progress {
        let stop = Arc::new(AtomicBool::new(false));
        let bar = ProgressBar::with_draw_target(Some(total), ProgressDrawTarget::stderr());
        let style = ProgressStyle::with_template(
            "{bar:24.cyan/blue} {bytes}/{total_bytes} {msg} (ETA {eta})",
        )
        .unwrap_or_else(|_| ProgressStyle::default_bar())
        .progress_chars("=> ");
        bar.set_style(style);
        let flag = stop.clone();
        let thread = std::thread::Builder::new()
            .name("progress".into())
            .spawn(move || {
                let started = Instant::now();
                loop {
                    let done = flag.load(Ordering::Relaxed);
                    let s = sample();
                    bar.set_position(s.bytes.min(total));
                    bar.set_message(message(s.records, s.alerts, started.elapsed()));
                    if done {
                        bar.finish_and_clear();
                        return;
                    }
                    std::thread::park_timeout(Duration::from_millis(200));
                }
            })
            .ok();
        Progress { stop, thread }
    }

    /// Clears the bar (before the end-of-run summary is written).
    pub fn finish(mut self) {
        self.stop_now();
    }

    fn stop_now(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            t.thread().unpark();
            let _ = t.join();
        }
    }
}

impl Drop for Progress {
    fn drop(&mut self) {
        self.stop_now();
    }
}

/// Total size of `files` (for the bar's length).
pub fn total_bytes(files: &[std::path::PathBuf]) -> u64 {
    files
        .iter()
        .filter_map(|f| std::fs::metadata(f).ok())
        .map(|m| m.len())
        .sum()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn message_shows_rate_and_alerts() {
        assert_eq!(
            message(2_000_000, 7, Duration::from_secs(2)),
            "2000000 records, 1.00M rec/s, 7 alerts"
        );
        assert_eq!(human(1500.0), "1.5k");
    }
}
