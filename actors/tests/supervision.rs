//! The runtime's promises, proven on a small pipeline: source -> worker -> sink.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use actix::prelude::*;
use sfactors::{
    Control, ControlEvent, Downstream, Node, NodeActor, NodeError, NodeMetrics, NodeSpec,
    RestartPolicy, Source, SourceActor, SourceStep, StopFlag,
};

struct Counter {
    next: u64,
    batches: u64,
    per_batch: u64,
    produced: Arc<AtomicU64>,
}

impl Source for Counter {
    type Out = Vec<u64>;
    fn next(&mut self) -> SourceStep<Vec<u64>> {
        if self.next >= self.batches {
            return SourceStep::End;
        }
        let base = self.next * self.per_batch;
        self.next += 1;
        self.produced.fetch_add(1, Ordering::SeqCst);
        SourceStep::Batch((base..base + self.per_batch).collect())
    }
}

/// Panics on every batch that contains one of `poison`.
struct Worker {
    poison: Vec<u64>,
    resets: Arc<AtomicU64>,
}

impl Node for Worker {
    type In = Vec<u64>;
    type Out = Vec<u64>;
    fn process(&mut self, input: Vec<u64>, out: &mut Vec<Vec<u64>>) -> Result<(), NodeError> {
        if input.iter().any(|v| self.poison.contains(v)) {
            panic!("poisoned batch starting at {}", input[0]);
        }
        out.push(input);
        Ok(())
    }
    fn reset(&mut self) {
        self.resets.fetch_add(1, Ordering::SeqCst);
    }
}

struct Sink {
    got: Arc<Mutex<Vec<u64>>>,
    delay: Duration,
    produced: Arc<AtomicU64>,
    handled: u64,
    max_lead: Arc<AtomicU64>,
}

impl Node for Sink {
    type In = Vec<u64>;
    type Out = ();
    fn process(&mut self, input: Vec<u64>, _out: &mut Vec<()>) -> Result<(), NodeError> {
        self.handled += 1;
        // How far the source ran ahead of the sink: bounded by the windows and mailboxes.
        let lead = self
            .produced
            .load(Ordering::SeqCst)
            .saturating_sub(self.handled);
        self.max_lead.fetch_max(lead, Ordering::SeqCst);
        if !self.delay.is_zero() {
            std::thread::sleep(self.delay);
        }
        self.got.lock().unwrap().extend(input);
        Ok(())
    }
}

struct Outcome {
    got: Vec<u64>,
    result: Result<(), ControlEvent>,
    worker: sfactors::MetricsSnapshot,
    resets: u64,
    max_lead: u64,
}

fn run(batches: u64, poison: Vec<u64>, policy: RestartPolicy, delay: Duration) -> Outcome {
    let got = Arc::new(Mutex::new(Vec::new()));
    let resets = Arc::new(AtomicU64::new(0));
    let produced = Arc::new(AtomicU64::new(0));
    let max_lead = Arc::new(AtomicU64::new(0));
    let worker_metrics = NodeMetrics::new("worker");
    let sys = System::new();
    let result = {
        let got = got.clone();
        let resets = resets.clone();
        let worker_metrics = worker_metrics.clone();
        let produced = produced.clone();
        let max_lead = max_lead.clone();
        sys.block_on(async move {
            let (control, mut handle) = Control::new();
            let a_src = Arbiter::new();
            let a_work = Arbiter::new();
            let a_sink = Arbiter::new();
            let window = 2;
            let sink_metrics = NodeMetrics::new("sink");
            let sink = NodeActor::start(
                &a_sink.handle(),
                NodeSpec {
                    node: Sink {
                        got,
                        delay,
                        produced: produced.clone(),
                        handled: 0,
                        max_lead,
                    },
                    metrics: sink_metrics.clone(),
                    downstream: vec![],
                    upstreams: 1,
                    window,
                    policy: policy.clone(),
                    control: control.clone(),
                },
                window,
            );
            let worker = NodeActor::start(
                &a_work.handle(),
                NodeSpec {
                    node: Worker { poison, resets },
                    metrics: worker_metrics.clone(),
                    downstream: vec![Downstream {
                        recipient: sink.recipient(),
                        metrics: sink_metrics,
                    }],
                    upstreams: 1,
                    window,
                    policy,
                    control: control.clone(),
                },
                window,
            );
            let src_metrics = NodeMetrics::new("source");
            SourceActor::start(
                &a_src.handle(),
                Counter {
                    next: 0,
                    batches,
                    per_batch: 10,
                    produced,
                },
                src_metrics,
                vec![Downstream {
                    recipient: worker.recipient(),
                    metrics: worker_metrics,
                }],
                window,
                control,
                StopFlag::new(),
            );
            let r = tokio::time::timeout(Duration::from_secs(60), handle.wait(3))
                .await
                .expect("pipeline did not finish in time");
            a_src.stop();
            a_work.stop();
            a_sink.stop();
            r
        })
    };
    let got = got.lock().unwrap().clone();
    Outcome {
        got,
        result,
        worker: worker_metrics.snapshot(),
        resets: resets.load(Ordering::SeqCst),
        max_lead: max_lead.load(Ordering::SeqCst),
    }
}

#[test]
fn a_panicking_batch_is_a_dead_letter_and_every_other_batch_arrives_in_order() {
    let o = run(50, vec![135], RestartPolicy::default(), Duration::ZERO);
    assert_eq!(o.result, Ok(()));
    // Batch 13 (values 130..140) is lost; all 49 others arrive, in order.
    let expected: Vec<u64> = (0..500).filter(|v| !(130..140).contains(v)).collect();
    assert_eq!(o.got, expected);
    assert_eq!(o.worker.dead_letters, 1);
    assert_eq!(o.worker.restarts, 1);
    assert_eq!(o.resets, 1, "the node was reset once by its restart");
    assert_eq!(
        o.worker.received_batches, 50,
        "queued batches survived the restart"
    );
}

#[test]
fn a_slow_consumer_makes_the_producer_wait_with_bounded_lead() {
    let o = run(
        60,
        vec![],
        RestartPolicy::default(),
        Duration::from_millis(5),
    );
    assert_eq!(o.result, Ok(()));
    assert_eq!(o.got, (0..600).collect::<Vec<_>>());
    // Two edges with a window of 2 and mailboxes of 3: the source can never be more than a
    // handful of batches ahead of the sink, however many it has to produce.
    assert!(
        o.max_lead <= 8,
        "source ran {} batches ahead of a slow sink",
        o.max_lead
    );
    assert!(o.max_lead >= 2, "the pipeline should still overlap stages");
}

#[test]
fn exceeding_the_restart_budget_escalates_and_stops_the_pipeline() {
    let policy = RestartPolicy {
        max_restarts: 2,
        window: Duration::from_secs(60),
        initial_backoff: Duration::from_millis(1),
        max_backoff: Duration::from_millis(2),
    };
    let o = run(30, vec![15, 55, 95, 135], policy, Duration::ZERO);
    match o.result {
        Err(ControlEvent::Failed { node, reason }) => {
            assert_eq!(node, "worker");
            assert!(reason.contains("restarts"), "{reason}");
        }
        other => panic!("expected escalation, got {other:?}"),
    }
    assert_eq!(o.worker.restarts, 2);
}
