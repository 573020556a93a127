//! Building a run: every stage of the plan becomes supervised actors, consumers before their
//! producers (a node needs its downstream addresses), the reader chain and the driver last.
//! Each node is registered in the run's [`Live`] view under its labels.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use actix::prelude::*;
use sfactors::{
    Control, Downstream, Envelope, NodeActor, NodeMetrics, NodeSpec, RestartPolicy, SourceActor,
    StopFlag,
};

use super::batch::Records;
use super::driver::{FileDriver, Listing, SocketDriver, SocketSettings, SocketSource};
use super::live::Live;
use super::plan::{Handler, PipelinePlan, PolicyStage, StageKind};
use super::reclaim::{Reclaim, Reclaimer};
use super::run::RunOptions;
use super::{exporter, flattener, monitor, policy, printer, reader};
use crate::cache::CacheStats;
use crate::diagnostics::Diagnostics;
use crate::seqpacket::Listener;
use crate::shutdown::Shutdown;
use crate::stats::{DeliveryCounters, ExporterStats};

/// What feeds the pipeline.
pub enum Input {
    /// Trace files.
    Files(Listing),
    /// The collector's stream on a socket that is already bound (so a bad path is an error
    /// at start, exit 2, not a failure inside the run).
    Socket {
        listener: Listener,
        settings: SocketSettings,
    },
    /// Several drivers (`drivers` entries) into one reader.
    Many(Vec<Input>),
}

impl Input {
    /// Whether every driver of this input is a socket (a live stream).
    pub fn is_live(&self) -> bool {
        match self {
            Input::Files(_) => false,
            Input::Socket { .. } => true,
            Input::Many(v) => !v.is_empty() && v.iter().all(Input::is_live),
        }
    }

    /// The drivers this input starts, in order.
    fn flatten(self) -> Vec<Input> {
        match self {
            Input::Many(v) => v.into_iter().flat_map(Input::flatten).collect(),
            one => vec![one],
        }
    }
}

impl From<Listing> for Input {
    fn from(l: Listing) -> Self {
        Input::Files(l)
    }
}

impl From<Vec<std::path::PathBuf>> for Input {
    fn from(files: Vec<std::path::PathBuf>) -> Self {
        Input::Files(files.into())
    }
}

type RecordsDown = Downstream<Records>;

/// The shard count of the one sharded policy stage in `downstream` (the flattener then
/// splits its batches for it), or 1.
fn feeds_shards(plan: &PipelinePlan, downstream: &[usize]) -> usize {
    match downstream {
        [one] => match &plan.stages[*one].policy {
            Some(ps) if ps.shards > 1 => ps.shards,
            _ => 1,
        },
        _ => 1,
    }
}

/// True when the reader stage feeds one policy stage, in alert mode.
fn feeds_alert_policies(plan: &PipelinePlan, downstream: &[usize]) -> bool {
    match downstream {
        [one] => plan.stages[*one]
            .policy
            .as_ref()
            .is_some_and(|ps| ps.handle.mode == crate::policy::engine::Mode::Alert),
        _ => false,
    }
}

/// Everything a build shares; lives for the duration of the System's main future.
pub(super) struct Builder<'a> {
    pub plan: &'a PipelinePlan,
    pub opts: &'a RunOptions,
    pub control: Control,
    pub shutdown: Arc<Shutdown>,
    pub diag: Arc<Diagnostics>,
    pub cache_stats: Arc<Mutex<CacheStats>>,
    pub live: Arc<Live>,
    pub stop: StopFlag,
    pub arbiters: &'a mut Vec<Arbiter>,
    /// Nodes started (the control channel waits for as many completions).
    pub nodes: usize,
    /// The policy nodes' end of the channel that takes their dropped records back to the
    /// flattener (`super::reclaim`); set by `build`.
    pub reclaim: Option<Reclaim>,
    /// Live input only (socket drivers): the nodes share one thread (see `Builder::build`).
    pub shared: Option<ArbiterHandle>,
}

/// A pipeline that could not be started.
#[derive(Debug, thiserror::Error)]
pub enum BuildError {
    #[error("the channel graph has a cycle")]
    Cycle,
    #[error("{stage}: {source}")]
    Transport {
        stage: String,
        #[source]
        source: crate::exporter::TransportError,
    },
    #[error("{stage}: {source}")]
    Queue {
        stage: String,
        #[source]
        source: crate::queue::QueueError,
    },
    /// The built-in stream schemas did not compile (a bug, never input).
    #[error("socket driver: built-in schemas: {0}")]
    Schemas(#[from] crate::sysflow::SchemaError),
    #[error("nested driver inputs")]
    NestedInputs,
}

impl Builder<'_> {
    /// A new arbiter (thread) and metrics for a node named `name`, registered in the live
    /// view under `stage` (and `exporter`).
    fn spawn(
        &mut self,
        name: String,
        stage: &str,
        exporter: &str,
    ) -> (ArbiterHandle, Arc<NodeMetrics>) {
        self.spawn_on(name, stage, exporter, false)
    }

    /// As `spawn`, on a thread of its own if `own` (a node that blocks its thread).
    fn spawn_on(
        &mut self,
        name: String,
        stage: &str,
        exporter: &str,
        own: bool,
    ) -> (ArbiterHandle, Arc<NodeMetrics>) {
        let h = match &self.shared {
            Some(h) if !own => h.clone(),
            _ => {
                let a = Arbiter::new();
                let h = a.handle();
                self.arbiters.push(a);
                h
            }
        };
        (h, self.register(name, stage, exporter))
    }

    /// Metrics for a node named `name`, registered in the live view (a node that runs on a
    /// thread it shares with another).
    fn register(&mut self, name: String, stage: &str, exporter: &str) -> Arc<NodeMetrics> {
        let m = NodeMetrics::new(name);
        self.live.add_node(m.clone(), stage, exporter);
        m
    }

    fn start<N: sfactors::Node>(
        &mut self,
        arbiter: &ArbiterHandle,
        node: N,
        metrics: Arc<NodeMetrics>,
        downstream: Vec<Downstream<N::Out>>,
        upstreams: usize,
    ) -> Addr<NodeActor<N>> {
        self.nodes += 1;
        let restart: RestartPolicy = self.opts.restart.clone();
        NodeActor::start(
            arbiter,
            NodeSpec {
                node,
                metrics,
                downstream,
                upstreams,
                window: self.opts.window,
                policy: restart,
                control: self.control.clone(),
            },
            self.opts.window,
        )
    }

    /// Starts every stage and the driver.
    ///
    /// With live input only (socket drivers), every node but the drivers runs on one shared
    /// thread. A collector's stream comes in batches of a latency budget's worth of records,
    /// and each batch wakes each thread it crosses: on a thread per node that is a
    /// cross-thread wake-up (an eventfd write, a context switch) per node per batch, which at
    /// a thousand records a second cost more than the records themselves; within a thread the
    /// hand-offs are queue pushes. (Two threads, decoding and assembly on one, policies and
    /// exporters on the other, cost twice the CPU at 100 to 10,000 records/s and were no
    /// faster on a burst.) Files, read as fast as the disk allows, keep a thread per node.
    pub fn build(&mut self, input: Input) -> Result<(), BuildError> {
        let plan = self.plan;
        if input.is_live() {
            let a = Arbiter::new();
            self.shared = Some(a.handle());
            self.arbiters.push(a);
        }
        let (reclaim, reclaimer) = super::reclaim::channel();
        self.reclaim = Some(reclaim);
        let mut entries: HashMap<usize, RecordsDown> = HashMap::new();
        // Each pass starts every non-reader stage whose consumers are all running.
        let mut pending: Vec<usize> = (0..plan.stages.len())
            .filter(|i| *i != plan.entry)
            .collect();
        while !pending.is_empty() {
            let (ready, blocked): (Vec<usize>, Vec<usize>) = pending.iter().partition(|i| {
                plan.stages[**i]
                    .downstream
                    .iter()
                    .all(|d| entries.contains_key(d))
            });
            if ready.is_empty() {
                return Err(BuildError::Cycle);
            }
            for i in ready {
                let entry = self.stage(i, &entries)?;
                entries.insert(i, entry);
            }
            pending = blocked;
        }
        self.reader_chain(&entries, input, reclaimer)
    }

    /// Starts stage `i` (not the reader) and returns its entry point.
    fn stage(
        &mut self,
        i: usize,
        entries: &HashMap<usize, RecordsDown>,
    ) -> Result<RecordsDown, BuildError> {
        let plan = self.plan;
        let sp = &plan.stages[i];
        let down: Vec<RecordsDown> = sp.downstream.iter().map(|d| entries[d].clone()).collect();
        let name = format!("{}[{}]", sp.config.processor, sp.config.index);
        let processor = sp.config.processor.as_str();
        let exporter_kind = match &sp.kind {
            StageKind::Exporter(ec) => ec.kind(),
            _ => "",
        };
        let (arb, metrics) = self.spawn(name.clone(), processor, exporter_kind);
        let recipient = match &sp.kind {
            StageKind::Exporter(ec) => {
                let mut transport = ec.open().map_err(|source| BuildError::Transport {
                    stage: name.clone(),
                    source,
                })?;
                let queue = match &ec.delivery.disk {
                    Some(qc) => Some(crate::queue::DiskQueue::open(qc).map_err(|source| {
                        BuildError::Queue {
                            stage: name.clone(),
                            source,
                        }
                    })?),
                    None => None,
                };
                let stats = Arc::new(ExporterStats::default());
                if let Some(q) = &queue {
                    stats.set_disk_queue(q.stats.clone());
                }
                transport.watch(stats.clone());
                self.live.add_exporter(&name, exporter_kind, stats.clone());
                let counters = Arc::new(DeliveryCounters {
                    node: metrics.clone(),
                    exporter: stats,
                });
                let mut node = exporter::ExporterNode::new(
                    ec,
                    transport,
                    counters,
                    self.shutdown.clone(),
                    queue,
                );
                // On a thread of its own the exporter hands its spent batches back to the
                // flattener (`super::reclaim`); on the shared live thread there is nothing to
                // gain.
                if let (None, Some(r)) = (&self.shared, &self.reclaim) {
                    node = node.with_reclaim(r.clone());
                }
                self.start(&arb, node, metrics.clone(), vec![], sp.upstreams)
                    .recipient::<Envelope<Records>>()
            }
            StageKind::Example => {
                let node = printer::LogSinkNode::new(printer::LogSink::Example, metrics.clone());
                self.start(&arb, node, metrics.clone(), vec![], sp.upstreams)
                    .recipient::<Envelope<Records>>()
            }
            StageKind::Policy | StageKind::Reader(_) => match &sp.policy {
                None => self
                    .start(
                        &arb,
                        policy::PassThroughNode,
                        metrics.clone(),
                        down,
                        sp.upstreams,
                    )
                    .recipient(),
                Some(ps) if ps.shards == 1 => {
                    self.live.add_policy(&name, ps.handle.clone());
                    let node = self.policy_node(ps);
                    self.start(&arb, node, metrics.clone(), down, sp.upstreams)
                        .recipient()
                }
                Some(ps) => {
                    self.live.add_policy(&name, ps.handle.clone());
                    // Router (this stage's metrics) -> N shards -> downstream.
                    let mut shard_downs = Vec::new();
                    for k in 0..ps.shards {
                        let (sarb, sm) = self.spawn(format!("{name}.shard{k}"), processor, "");
                        let node = self.policy_node(ps);
                        let shard = self.start(&sarb, node, sm.clone(), down.clone(), 1);
                        shard_downs.push(Downstream {
                            recipient: shard.recipient(),
                            metrics: sm,
                        });
                    }
                    let router = policy::RouterNode::new(ps.shards);
                    self.start(&arb, router, metrics.clone(), shard_downs, sp.upstreams)
                        .recipient()
                }
            },
        };
        if let Some(ps) = &sp.policy {
            if let Some(interval) = ps.monitor {
                // The monitor is not a data-path node: its own thread, not counted.
                let a = Arbiter::new();
                monitor::PolicyMonitor::start(&a.handle(), ps.clone(), interval);
                self.arbiters.push(a);
            }
        }
        Ok(Downstream { recipient, metrics })
    }

    fn policy_node(&self, ps: &PolicyStage) -> policy::PolicyNode {
        let node = policy::PolicyNode::new(ps.handle.clone());
        match &self.reclaim {
            Some(r) => node.with_reclaim(r.clone()),
            None => node,
        }
    }

    /// The reader stage (handler, flattener, reader) and the driver.
    fn reader_chain(
        &mut self,
        entries: &HashMap<usize, RecordsDown>,
        input: Input,
        reclaimer: Reclaimer,
    ) -> Result<(), BuildError> {
        let plan = self.plan;
        let rp = &plan.stages[plan.entry];
        let reader_stage = rp.config.processor.as_str();
        let printer = rp.kind == StageKind::Reader(Handler::Printer);
        let down: Vec<RecordsDown> = if printer {
            let (arb, pm) = self.spawn(format!("printer[{}]", rp.config.index), reader_stage, "");
            let node = printer::LogSinkNode::new(printer::LogSink::Printer, pm.clone());
            let p = self.start(&arb, node, pm.clone(), vec![], 1);
            vec![Downstream {
                recipient: p.recipient(),
                metrics: pm,
            }]
        } else {
            rp.downstream.iter().map(|d| entries[d].clone()).collect()
        };
        let (arb, fm) = self.spawn("flattener".to_string(), reader_stage, "");
        let node = flattener::FlattenerNode::new(
            plan.cache_limits,
            self.cache_stats.clone(),
            self.live.tables.clone(),
        )
        .with_rate_limit(plan.rate_limit)
        .with_upstream_quirks(plan.upstream_quirks)
        .with_reclaimer(reclaimer)
        .with_shards(if printer {
            1
        } else {
            feeds_shards(plan, &rp.downstream)
        });
        let flat = self.start(&arb, node, fm.clone(), down, 1);
        // Files: the reader shares the flattener's thread unless alert-mode policies follow.
        // Enrich mode exports every record, so the exporter's encoding keeps a core busy: a
        // block decoded and assembled on one core (its records still in that core's cache,
        // the hand-off a queue push) cost 3–6 % less CPU and 5–12 MiB less peak RSS, and ran
        // 1.1–1.6x the records/s (`performance.md`). In alert mode few records reach the
        // exporter and decoding and assembly are the longest path: on two threads they ran
        // about 10 % faster on a real trace. Live pipelines share one thread in any case.
        let own_reader = self.shared.is_none() && feeds_alert_policies(plan, &rp.downstream);
        let (arb, rm) = if own_reader {
            self.spawn("reader".to_string(), reader_stage, "")
        } else {
            (arb, self.register("reader".to_string(), reader_stage, ""))
        };
        let node = reader::ReaderNode::new(
            self.diag.clone(),
            plan.block_limits,
            self.live.socket.clone(),
        );
        let inputs = input.flatten();
        let reader = self.start(
            &arb,
            node,
            rm.clone(),
            vec![Downstream {
                recipient: flat.recipient(),
                metrics: fm,
            }],
            inputs.len(),
        );
        let many = inputs.len() > 1;
        self.shutdown.expect_inputs(inputs.len());
        for (index, input) in inputs.into_iter().enumerate() {
            // One driver keeps the node name `driver` (metrics and summaries unchanged);
            // several are `driver[0]`, `driver[1]`, ... each with its own counters.
            let name = if many {
                format!("driver[{index}]")
            } else {
                "driver".to_string()
            };
            // A file driver blocks its thread (reads): always its own. A socket driver waits
            // on the shared thread when there is one (`SocketSource`).
            let own = matches!(input, Input::Files(_));
            let (arb, dm) = self.spawn_on(name, "driver", "", own);
            let to_reader = vec![Downstream {
                recipient: reader.clone().recipient(),
                metrics: rm.clone(),
            }];
            let window = self.opts.window;
            self.nodes += 1;
            let index = index as u16;
            match input {
                Input::Files(listing) => {
                    self.live.add_driver("file");
                    let driver = FileDriver::new(
                        listing,
                        self.diag.clone(),
                        self.opts.batch_records,
                        self.shutdown.clone(),
                        plan.block_limits,
                        self.live.bytes_read.clone(),
                    )
                    .with_index(index);
                    SourceActor::start(
                        &arb,
                        driver,
                        dm,
                        to_reader,
                        window,
                        self.control.clone(),
                        self.stop.clone(),
                    );
                }
                Input::Socket { listener, settings } => {
                    self.live.add_driver("socket");
                    let driver = SocketDriver::new(
                        listener,
                        settings,
                        self.stop.clone(),
                        self.shutdown.clone(),
                        self.live.socket.clone(),
                        self.opts.batch_records as usize,
                    )?
                    .with_index(index);
                    SourceActor::start_async(
                        &arb,
                        SocketSource::new(driver),
                        dm,
                        to_reader,
                        window,
                        self.control.clone(),
                        self.stop.clone(),
                    );
                }
                Input::Many(_) => return Err(BuildError::NestedInputs),
            }
        }
        Ok(())
    }
}
