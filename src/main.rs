//! `sfprocessor`: reads SysFlow traces (or the collector's live stream), runs the configured
//! pipeline, exports the results. The program itself is `sfprocessor::app`; exit codes are
//! `app::Exit` (0 ok, 1 input skipped or records not delivered, 2 usage or configuration
//! error, 3 a pipeline node failed, 4 a resource is busy).

use std::process::ExitCode;

use sfprocessor::app::{self, Exit};
use sfprocessor::cli::{Cli, USAGE};

fn main() -> ExitCode {
    let cli = match Cli::parse(std::env::args().skip(1)) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("sfprocessor: {e}\n\n{USAGE}");
            return Exit::Config.into();
        }
    };
    if cli.help {
        println!("{USAGE}");
        return ExitCode::SUCCESS;
    }
    if cli.version {
        println!("{}", app::version_line());
        return ExitCode::SUCCESS;
    }
    if let Some(url) = &cli.health {
        return app::health::probe(url).into();
    }
    app::run(cli).into()
}
