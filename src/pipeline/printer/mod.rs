//! Built-in stand-ins for upstream's two example plugins, so their pipeline files run unchanged
//! without loading Go plugins:
//!
//! - the `printer` handler (`plugins/handlers/printer`): a `sysflowreader` stage with
//!   `handler: printer` logs one line per event or flow instead of producing records;
//! - the `example` processor (`plugins/processors/example`): consumes flattened records and logs
//!   one line per process event.
//!
//! Both are sinks: they log at info level on stderr (like upstream's `logger.Info`) and pass
//! nothing on. The line texts follow upstream's format strings so log scrapers keep working.

use std::fmt::Write as _;

use sfactors::{Node, NodeError};

use super::batch::{Nothing, Records};
use crate::record::{Event, Record};

/// Which plugin a log sink stands in for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogSink {
    /// Upstream's `printer` handler: a line per event or flow (not for Kubernetes events,
    /// which upstream's printer ignores).
    Printer,
    /// Upstream's `example` processor: a line per process event.
    Example,
}

impl LogSink {
    /// The line upstream's plugin logs for `r`, or `None` when it logs nothing for it. Written
    /// into `buf` (cleared first) so a batch reuses one allocation.
    pub fn line<'a>(self, r: &Record, buf: &'a mut String) -> Option<&'a str> {
        buf.clear();
        let exe = r.process.as_ref().map(|p| p.exe.as_str()).unwrap_or("");
        // Writing into a String cannot fail; the results are ignored on that ground.
        match (self, &r.event) {
            (LogSink::Printer, Event::NetworkFlow(e)) => {
                let _ = write!(buf, "NetworkFlow {exe}, {}", e.dport);
            }
            (LogSink::Printer, Event::FileFlow(e)) => {
                let _ = write!(buf, "FileFlow {exe}, {}", e.fd);
            }
            (LogSink::Printer, Event::FileEvent(e)) => {
                let _ = write!(buf, "FileEvt {exe}, {}", e.tid);
            }
            (LogSink::Printer, Event::NetworkEvent(e)) => {
                let _ = write!(buf, "NetEvt {exe}, {}", e.tid);
            }
            (LogSink::Printer, Event::ProcessEvent(e)) => {
                let _ = write!(buf, "ProcEvt {exe}, {}", e.tid);
            }
            // Upstream prints the process OID pointer with `%v`: `&{createTS hpid}`.
            (LogSink::Printer, Event::ProcessFlow(e)) => {
                let _ = write!(
                    buf,
                    "ProcFlow {exe}, &{{{} {}}}",
                    e.proc_oid.create_ts, e.proc_oid.hpid
                );
            }
            (LogSink::Example, Event::ProcessEvent(e)) => {
                let _ = write!(buf, "Process Event: {exe}, {}", e.tid);
            }
            _ => return None,
        }
        Some(buf.as_str())
    }
}

/// The sink node: logs the lines of each batch and counts the records it consumed as sent.
pub struct LogSinkNode {
    sink: LogSink,
    metrics: std::sync::Arc<sfactors::NodeMetrics>,
    buf: String,
}

impl LogSinkNode {
    pub fn new(sink: LogSink, metrics: std::sync::Arc<sfactors::NodeMetrics>) -> Self {
        LogSinkNode {
            sink,
            metrics,
            buf: String::new(),
        }
    }
}

impl Node for LogSinkNode {
    type In = Records;
    type Out = Nothing;

    fn process(&mut self, input: Records, _out: &mut Vec<Nothing>) -> Result<(), NodeError> {
        for r in &input.0 {
            if let Some(l) = self.sink.line(r, &mut self.buf) {
                tracing::info!("{l}");
            }
        }
        self.metrics.add_sent(input.0.len() as u64);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::sysflow::model::*;

    fn record(event: Event, exe: &str) -> Record {
        let mut r = Record::new(event, Arc::new(Header::default()), Arc::from(Vec::new()));
        r.process = Some(Arc::new(Process {
            exe: exe.into(),
            ..Default::default()
        }));
        r
    }

    #[test]
    fn printer_lines_follow_upstream_format_strings() {
        let oid = Oid {
            create_ts: 1531776742000,
            hpid: 42,
        };
        let nf = record(
            Event::NetworkFlow(NetworkFlow {
                proc_oid: oid,
                dport: 443,
                ..Default::default()
            }),
            "/usr/bin/curl",
        );
        let ff = record(
            Event::FileFlow(FileFlow {
                proc_oid: oid,
                fd: 7,
                ..Default::default()
            }),
            "/bin/cat",
        );
        let pe = record(
            Event::ProcessEvent(ProcessEvent {
                proc_oid: oid,
                tid: 99,
                ..Default::default()
            }),
            "/bin/sh",
        );
        let pf = record(
            Event::ProcessFlow(ProcessFlow {
                proc_oid: oid,
                ..Default::default()
            }),
            "/bin/sh",
        );
        let mut buf = String::new();
        for (sink, r, want) in [
            (
                LogSink::Printer,
                &nf,
                Some("NetworkFlow /usr/bin/curl, 443"),
            ),
            (LogSink::Printer, &ff, Some("FileFlow /bin/cat, 7")),
            (LogSink::Printer, &pe, Some("ProcEvt /bin/sh, 99")),
            (LogSink::Example, &pe, Some("Process Event: /bin/sh, 99")),
            (
                LogSink::Printer,
                &pf,
                Some("ProcFlow /bin/sh, &{1531776742000 42}"),
            ),
            // The example processor only reports process events.
            (LogSink::Example, &nf, None),
            (LogSink::Example, &pf, None),
        ] {
            assert_eq!(sink.line(r, &mut buf), want, "{sink:?}");
        }
    }

    #[test]
    fn a_record_without_its_process_logs_an_empty_exe() {
        let mut r = record(
            Event::FileEvent(FileEvent {
                tid: 5,
                ..Default::default()
            }),
            "",
        );
        r.process = None;
        let mut buf = String::new();
        assert_eq!(LogSink::Printer.line(&r, &mut buf), Some("FileEvt , 5"));
    }
}
