//! Restart strategy: one-for-one, at most `max_restarts` within `window`, exponential backoff.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

/// How a supervised node is restarted after a panic.
#[derive(Debug, Clone)]
pub struct RestartPolicy {
    /// Restarts allowed inside `window`; one more escalates to the pipeline.
    pub max_restarts: usize,
    /// Sliding window over which restarts are counted.
    pub window: Duration,
    /// Delay before the first restart; doubled for each further restart inside the window.
    pub initial_backoff: Duration,
    /// Upper bound for the backoff delay.
    pub max_backoff: Duration,
}

impl Default for RestartPolicy {
    fn default() -> Self {
        RestartPolicy {
            max_restarts: 5,
            window: Duration::from_secs(60),
            initial_backoff: Duration::from_millis(10),
            max_backoff: Duration::from_secs(5),
        }
    }
}

/// Tracks restart times inside the sliding window.
#[derive(Debug, Default)]
pub(crate) struct RestartTracker {
    recent: VecDeque<Instant>,
}

/// What the supervisor should do after a failure.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum RestartDecision {
    Restart { backoff: Duration },
    Escalate { restarts_in_window: usize },
}

impl RestartTracker {
    pub(crate) fn on_failure(&mut self, policy: &RestartPolicy, now: Instant) -> RestartDecision {
        while let Some(first) = self.recent.front() {
            if now.duration_since(*first) > policy.window {
                self.recent.pop_front();
            } else {
                break;
            }
        }
        if self.recent.len() >= policy.max_restarts {
            return RestartDecision::Escalate {
                restarts_in_window: self.recent.len(),
            };
        }
        let exp = self.recent.len().min(20) as u32;
        let backoff = policy
            .initial_backoff
            .saturating_mul(2u32.saturating_pow(exp))
            .min(policy.max_backoff);
        self.recent.push_back(now);
        RestartDecision::Restart { backoff }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_then_escalates() {
        let p = RestartPolicy {
            max_restarts: 3,
            window: Duration::from_secs(10),
            initial_backoff: Duration::from_millis(10),
            max_backoff: Duration::from_millis(25),
        };
        let mut t = RestartTracker::default();
        let now = Instant::now();
        assert_eq!(
            t.on_failure(&p, now),
            RestartDecision::Restart {
                backoff: Duration::from_millis(10)
            }
        );
        assert_eq!(
            t.on_failure(&p, now),
            RestartDecision::Restart {
                backoff: Duration::from_millis(20)
            }
        );
        assert_eq!(
            t.on_failure(&p, now),
            RestartDecision::Restart {
                backoff: Duration::from_millis(25)
            }
        );
        assert_eq!(
            t.on_failure(&p, now),
            RestartDecision::Escalate {
                restarts_in_window: 3
            }
        );
    }

    #[test]
    fn old_restarts_leave_the_window() {
        let p = RestartPolicy {
            max_restarts: 1,
            window: Duration::from_millis(100),
            ..Default::default()
        };
        let mut t = RestartTracker::default();
        let t0 = Instant::now();
        assert!(matches!(
            t.on_failure(&p, t0),
            RestartDecision::Restart { .. }
        ));
        assert!(matches!(
            t.on_failure(&p, t0 + Duration::from_millis(50)),
            RestartDecision::Escalate { .. }
        ));
        assert!(matches!(
            t.on_failure(&p, t0 + Duration::from_millis(500)),
            RestartDecision::Restart { .. }
        ));
    }
}
