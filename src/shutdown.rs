//! When a run's input ended, and why: the clock that bounds shutdown.
//!
//! Why it is shared rather than passed down the pipeline with the end marker: an exporter
//! whose target is down blocks on its full delivery queue, so the end marker can sit behind
//! the very batches that cannot leave, and the drain deadline it would start never starts
//! (the agent then retried for ever after SIGTERM). The driver (end of input) and the signal
//! handler (SIGTERM/SIGINT) mark the moment here instead, and every delivery worker reads it
//! directly, whatever is queued in front of it.

use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Why the input ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EndCause {
    /// The driver read everything (end of the files).
    Input,
    /// SIGTERM/SIGINT: the operator wants the process gone within the drain timeout.
    Signal,
}

#[derive(Debug, Clone, Copy)]
struct State {
    at: Instant,
    cause: EndCause,
    /// Set by a second signal: every deadline is now.
    expired: bool,
}

/// The shared end-of-input clock of one run.
#[derive(Debug, Default)]
pub struct Shutdown {
    state: Mutex<Option<State>>,
    /// Drivers still reading beyond the first (several `drivers` entries): the input has
    /// ended when the last of them has.
    more_inputs: std::sync::atomic::AtomicUsize,
}

impl Shutdown {
    pub fn new() -> std::sync::Arc<Self> {
        std::sync::Arc::new(Shutdown::default())
    }

    fn with<R>(&self, f: impl FnOnce(&mut Option<State>) -> R) -> R {
        match self.state.lock() {
            Ok(mut g) => f(&mut g),
            Err(p) => f(&mut p.into_inner()),
        }
    }

    /// The run has `n` drivers: [`Shutdown::input_ended`] must be called by each.
    pub fn expect_inputs(&self, n: usize) {
        self.more_inputs
            .store(n.saturating_sub(1), std::sync::atomic::Ordering::SeqCst);
    }

    /// A driver's input ended; the run's input has ended once every driver's has.
    pub fn input_ended(&self) {
        use std::sync::atomic::Ordering::SeqCst;
        let more = self
            .more_inputs
            .fetch_update(SeqCst, SeqCst, |n| n.checked_sub(1))
            .is_ok();
        if !more {
            self.all_input_ended();
        }
    }

    /// The whole input ended (first call wins; a later signal still makes the drain
    /// strict): what the exporters' end marks, whatever the drivers said.
    pub fn all_input_ended(&self) {
        self.with(|s| {
            s.get_or_insert(State {
                at: Instant::now(),
                cause: EndCause::Input,
                expired: false,
            });
        })
    }

    /// A stop signal arrived. The drain clock keeps its start if the input had already
    /// ended; either way the drain becomes strict (see [`Shutdown::strict`]). A second
    /// signal expires every deadline at once.
    pub fn signalled(&self) {
        self.with(|s| match s {
            Some(st) if st.cause == EndCause::Signal => st.expired = true,
            Some(st) => st.cause = EndCause::Signal,
            None => {
                *s = Some(State {
                    at: Instant::now(),
                    cause: EndCause::Signal,
                    expired: false,
                })
            }
        })
    }

    /// Why the input ended, if it has.
    pub fn cause(&self) -> Option<EndCause> {
        self.with(|s| s.map(|st| st.cause))
    }

    /// When a drain of `timeout` ends: `None` while the input goes on.
    pub fn deadline(&self, timeout: Duration) -> Option<Instant> {
        self.with(|s| s.map(|st| if st.expired { st.at } else { st.at + timeout }))
    }

    /// After a signal, nothing new is attempted once the deadline has passed, even on a
    /// target that is still accepting data: the operator asked for a bounded stop. At the
    /// end of the input, a target that keeps accepting data is drained to the end (a slow
    /// terminal pipe, a busy but healthy broker); only a failing one is given up on.
    pub fn strict(&self) -> bool {
        self.cause() == Some(EndCause::Signal)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn no_deadline_until_the_input_ends() {
        let s = Shutdown::default();
        assert_eq!(s.deadline(Duration::from_secs(5)), None);
        assert!(!s.strict());
        s.input_ended();
        let d = s.deadline(Duration::from_secs(5)).expect("deadline");
        assert!(d > Instant::now() + Duration::from_secs(4));
        assert!(!s.strict());
    }

    #[test]
    fn a_signal_after_the_end_of_input_keeps_the_clock_and_makes_it_strict() {
        let s = Shutdown::default();
        s.input_ended();
        let d = s.deadline(Duration::from_secs(5));
        s.signalled();
        assert!(s.strict());
        assert_eq!(s.deadline(Duration::from_secs(5)), d);
    }

    #[test]
    fn with_several_drivers_the_input_ends_with_the_last() {
        let s = Shutdown::default();
        s.expect_inputs(2);
        s.input_ended();
        assert_eq!(s.cause(), None, "one driver is still reading");
        s.input_ended();
        assert_eq!(s.cause(), Some(EndCause::Input));
    }

    #[test]
    fn a_second_signal_expires_the_deadline() {
        let s = Shutdown::default();
        s.signalled();
        assert!(s.deadline(Duration::from_secs(60)).expect("d") > Instant::now());
        s.signalled();
        assert!(s.deadline(Duration::from_secs(60)).expect("d") <= Instant::now());
        s.input_ended();
        assert_eq!(s.cause(), Some(EndCause::Signal));
    }
}
