//! The pipeline: a configuration is validated into a plan (`plan`: stages, channels, the
//! driver), the plan is built into supervised actors (`build`), and run until the input ends
//! or a signal stops it (`run`), while `live` exposes every part to the metrics endpoint:
//! driver -> reader -> flattener -> policy engine(s) -> exporter(s).

pub mod batch;
mod build;
pub mod driver;
pub mod exporter;
pub mod flattener;
pub mod live;
mod metrics;
pub mod monitor;
mod plan;
pub mod policy;
pub mod printer;
pub mod reader;
pub mod reclaim;
mod run;

pub use build::Input;
pub use live::Live;
pub use plan::{
    plan, plan_with, Handler, PipelinePlan, PolicyStage, StageKind, StagePlan, POLICY_OUT,
    READER_IN, READER_OUT,
};
pub use run::{run, run_live, RunOptions, RunOutcome, ABANDON_GRACE};
