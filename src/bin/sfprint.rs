//! `sfprint`: prints and converts SysFlow traces; sysprint's successor (see `sfprint -h`).
//!
//! Exit codes: 0 success; 1 part of the input could not be read (each problem is named on
//! stderr; what could be read was printed); 2 usage error or a bad filter, policy or
//! output path.

use std::process::ExitCode;

use sfprocessor::print::cli::{Options, USAGE};

fn main() -> ExitCode {
    let o = match Options::parse(std::env::args().skip(1)) {
        Ok(o) => o,
        Err(e) => {
            eprintln!("{USAGE}\nsfprint: error: {e}");
            return ExitCode::from(2);
        }
    };
    if o.help {
        println!("{USAGE}");
        return ExitCode::SUCCESS;
    }
    if o.version {
        println!("sfprint {}", env!("CARGO_PKG_VERSION"));
        return ExitCode::SUCCESS;
    }
    if o.list {
        let _ = sfprocessor::print::list(&mut std::io::stdout().lock());
        return ExitCode::SUCCESS;
    }
    let filter = tracing_subscriber::EnvFilter::try_from_env("SFPRINT_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(&o.log));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_target(false)
        .try_init();
    if let Some(dir) = &o.queue {
        return inspect_queue(dir, o.queue_records);
    }
    match sfprocessor::print::run(&o) {
        Ok(outcome) if outcome.damage.is_empty() => ExitCode::SUCCESS,
        Ok(outcome) => {
            for d in &outcome.damage {
                eprintln!("sfprint: {d}");
            }
            eprintln!(
                "sfprint: {} problem(s) in the input; {} records printed",
                outcome.damage.len(),
                outcome.records
            );
            ExitCode::from(1)
        }
        Err(e) => {
            eprintln!("sfprint: {e}");
            ExitCode::from(2)
        }
    }
}

/// `sfprint --queue DIR`: what an exporter's disk queue holds.
fn inspect_queue(dir: &std::path::Path, records: bool) -> ExitCode {
    use std::io::Write;
    if records {
        let out = std::io::stdout();
        let mut out = std::io::BufWriter::new(out.lock());
        let r = sfprocessor::queue::inspect::inspect_records(dir, |rec| {
            let _ = out.write_all(rec);
            let _ = out.write_all(b"\n");
        });
        let _ = out.flush();
        return match r {
            Ok(i) if i.damage.is_empty() => ExitCode::SUCCESS,
            Ok(i) => {
                for d in &i.damage {
                    eprintln!("sfprint: {d}");
                }
                ExitCode::from(1)
            }
            Err(e) => {
                eprintln!("sfprint: {e}");
                ExitCode::from(2)
            }
        };
    }
    let i = match sfprocessor::queue::inspect::inspect(dir) {
        Ok(i) => i,
        Err(e) => {
            eprintln!("sfprint: {e}");
            return ExitCode::from(2);
        }
    };
    let when = |ms: Option<u64>| match ms {
        Some(ms) => humantime::format_rfc3339_millis(
            std::time::UNIX_EPOCH + std::time::Duration::from_millis(ms),
        )
        .to_string(),
        None => "-".into(),
    };
    println!("queue:     {}", dir.display());
    println!(
        "in use:    {}",
        if i.locked {
            "yes (an agent holds it)"
        } else {
            "no"
        }
    );
    println!("records:   {}", i.records);
    println!("bytes:     {}", i.bytes);
    println!("segments:  {}", i.segments);
    println!("oldest:    {}", when(i.oldest_ms));
    println!("newest:    {}", when(i.newest_ms));
    match i.ack {
        Some((seg, off)) => println!("delivered: up to segment {seg}, offset {off}"),
        None => println!("delivered: (no ack file)"),
    }
    println!("damaged:   {}", i.damage.len());
    for d in &i.damage {
        println!("  {d}");
    }
    if !i.set_aside.is_empty() {
        println!("set aside: {}", i.set_aside.join(", "));
    }
    if i.damage.is_empty() {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    }
}
