//! Exit codes of `sfprocessor`, one meaning each, so a unit file can tell what a restart can
//! fix (`RestartPreventExitStatus=2`: a configuration error stays one).

use std::process::ExitCode;

/// How a run ended, as the process tells its supervisor.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Exit {
    /// Everything read was delivered (bad socket packets included: they are counted in the
    /// metrics and the summary, not in the exit status).
    Ok = 0,
    /// Trace input was skipped (damaged blocks, unreadable files) or records were not
    /// delivered.
    Incomplete = 1,
    /// Usage or configuration error: restarting will not fix it.
    Config = 2,
    /// A pipeline node failed (escalated after its restarts).
    Pipeline = 3,
    /// A resource the agent needs is busy now (the metrics port, a socket another agent
    /// listens on): a restart later may succeed, so systemd retries it.
    Busy = 4,
}

impl From<Exit> for ExitCode {
    fn from(e: Exit) -> ExitCode {
        ExitCode::from(e as u8)
    }
}
