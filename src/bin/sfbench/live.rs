//! Live-agent benchmarks: the socket path against the file path, a soak of tens of millions
//! of records with RSS sampled as it runs, and alert latency from the collector's send to a
//! real rsyslog. The agent runs in this process; the collector (simulator) in a child process
//! of this binary (`-stage simulate`), so the two do not share a heap or an RSS figure.

use std::io::{BufRead, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use sfactors::StopFlag;
use sfprocessor::config::PipelineConfig;
use sfprocessor::gen::{GenConfig, Generator};
use sfprocessor::pipeline::{self, driver::SocketSettings, Input, Live, RunOptions};
use sfprocessor::seqpacket::Listener;
use sfprocessor::sim::{self, Collector, Pace};
use sfprocessor::sysflow::writer::{schema, DatumEncoder, SchemaVersion};
use sfprocessor::sysflow::SysFlow;

/// Options of the live stages.
#[derive(Debug, Clone, Default)]
pub struct LiveArgs {
    pub socket: Option<PathBuf>,
    pub rate: u64,
    pub seconds: u64,
    pub records: u64,
    pub distinct: bool,
    pub stamp: bool,
    /// `-agent PATH`: the agent binary `live-cpu` measures.
    pub agent: Option<PathBuf>,
    /// `-latency`: `live-cpu` also measures alert latency (alerts to rsyslog).
    pub latency: bool,
    /// `-warmup N`: `live-cpu` sends N seconds before it starts measuring.
    pub warmup: u64,
}

const PASS_THROUGH: &str = r#"{"pipeline":[
 {"processor":"sysflowreader","handler":"flattener","in":"sysflow sysflowchan","out":"flat flattenerchan"},
 {"processor":"policyengine","in":"flat flattenerchan","out":"evt eventchan","mode":"enrich"},
 {"processor":"exporter","in":"evt eventchan","export":"null","format":"json"}]}"#;

fn rss_mib() -> f64 {
    std::fs::read_to_string("/proc/self/statm")
        .ok()
        .and_then(|s| {
            s.split_whitespace()
                .nth(1)
                .and_then(|v| v.parse::<f64>().ok())
        })
        .map(|pages| pages * 4096.0 / (1 << 20) as f64)
        .unwrap_or(0.0)
}

/// The agent on a socket in a temporary directory, running `cfg` on its own thread.
struct Agent {
    live: Arc<Live>,
    stop: StopFlag,
    sock: PathBuf,
    run: std::thread::JoinHandle<pipeline::RunOutcome>,
    _dir: PathBuf,
}

impl Agent {
    fn start(cfg_text: &str) -> Result<Agent, String> {
        let dir = std::env::temp_dir().join(format!("sfbench-live-{}", std::process::id()));
        std::fs::create_dir_all(&dir).map_err(|e| e.to_string())?;
        let sock = dir.join("sysflow.sock");
        let cfg =
            PipelineConfig::parse(cfg_text, "bench-live.json", &[]).map_err(|e| e.to_string())?;
        let plan = pipeline::plan(&cfg).map_err(|e| e.to_string())?;
        let listener = Listener::bind(&sock, 16).map_err(|e| e.to_string())?;
        let live = Live::new();
        let stop = StopFlag::new();
        let (l, s) = (live.clone(), stop.clone());
        let run = std::thread::spawn(move || {
            pipeline::run_live(
                &plan,
                Input::Socket {
                    listener,
                    settings: SocketSettings::default(),
                },
                s,
                RunOptions::default(),
                l,
            )
        });
        Ok(Agent {
            live,
            stop,
            sock,
            run,
            _dir: dir,
        })
    }

    fn packets(&self) -> u64 {
        self.live.socket.packets.load(Ordering::Relaxed)
    }

    /// Stops it once the simulator is done and every packet it sent has been read.
    fn finish(self, sent_packets: u64) -> Result<pipeline::RunOutcome, String> {
        let t = Instant::now();
        while self.packets() < sent_packets {
            if t.elapsed() > Duration::from_secs(120) {
                return Err(format!(
                    "the agent read {} of {sent_packets} packets",
                    self.packets()
                ));
            }
            std::thread::sleep(Duration::from_millis(2));
        }
        self.stop.stop();
        let out = self
            .run
            .join()
            .map_err(|_| "the agent panicked".to_string())?;
        if let Some(f) = &out.failure {
            return Err(f.clone());
        }
        Ok(out)
    }
}

/// This binary as the collector: `-stage simulate` with `args`; returns the child, whose
/// stdout says `ready` once it has its records in hand and `sent N` when done.
fn simulator(sock: &Path, args: &[String]) -> Result<Child, String> {
    let exe = std::env::current_exe().map_err(|e| e.to_string())?;
    Command::new(exe)
        .args(["-stage", "simulate", "-socket"])
        .arg(sock)
        .args(args)
        .stdout(Stdio::piped())
        .spawn()
        .map_err(|e| e.to_string())
}

/// Reads the simulator's `ready` and `sent N` lines.
struct SimOutput(std::io::Lines<std::io::BufReader<std::process::ChildStdout>>);

impl SimOutput {
    fn new(c: &mut Child) -> Result<Self, String> {
        let out = c.stdout.take().ok_or("no stdout")?;
        Ok(SimOutput(std::io::BufReader::new(out).lines()))
    }

    fn expect(&mut self, word: &str) -> Result<u64, String> {
        for l in self.0.by_ref() {
            let l = l.map_err(|e| e.to_string())?;
            if let Some(rest) = l.strip_prefix(word) {
                return Ok(rest.trim().parse().unwrap_or(0));
            }
        }
        Err(format!("the simulator ended before `{word}`"))
    }
}

/// `-stage socket`: the trace's records sent over the socket (preloaded by the simulator, so
/// it costs little CPU), through pass-through, JSON and the null exporter. Timed from the
/// first packet to the end of the drain.
pub fn socket_stage(trace: &Path) -> Result<(u64, f64), String> {
    let agent = Agent::start(PASS_THROUGH)?;
    let mut sim = simulator(&agent.sock, &["-trace".into(), trace.display().to_string()])?;
    let mut out = SimOutput::new(&mut sim)?;
    out.expect("ready")?;
    while agent.packets() == 0 {
        std::thread::sleep(Duration::from_micros(200));
    }
    let t = Instant::now();
    let sent = out.expect("sent")?;
    let _ = sim.wait();
    let outcome = agent.finish(sent)?;
    let secs = t.elapsed().as_secs_f64();
    let exported = outcome.exported();
    eprintln!("socket: {sent} packets, {exported} records exported");
    Ok((sent, secs))
}

/// `-stage soak`: `records` generated records with distinct files and process churn, as fast
/// as the agent takes them; RSS printed every million records, and its spread after warm-up.
pub fn soak_stage(records: u64) -> Result<(u64, f64), String> {
    let agent = Agent::start(PASS_THROUGH)?;
    let mut sim = simulator(
        &agent.sock,
        &["-records".into(), records.to_string(), "-distinct".into()],
    )?;
    let mut out = SimOutput::new(&mut sim)?;
    out.expect("ready")?;
    let t = Instant::now();
    let done = Arc::new(AtomicBool::new(false));
    let mut samples: Vec<(u64, f64)> = Vec::new();
    let sampler = {
        let live = agent.live.clone();
        let done = done.clone();
        std::thread::spawn(move || {
            let mut next = 1_000_000u64;
            let mut got = Vec::new();
            while !done.load(Ordering::Relaxed) {
                let n = live.socket.packets.load(Ordering::Relaxed);
                if n >= next {
                    let rss = rss_mib();
                    let tables = &live.tables;
                    println!(
                        "soak records={n} rss_mib={rss:.1} processes={} files={} evicted={} reaped={}",
                        tables.processes.load(Ordering::Relaxed),
                        tables.files.load(Ordering::Relaxed),
                        tables.evictions.load(Ordering::Relaxed),
                        tables.reaped.load(Ordering::Relaxed),
                    );
                    let _ = std::io::stdout().flush();
                    got.push((n, rss));
                    next += 1_000_000;
                }
                std::thread::sleep(Duration::from_millis(20));
            }
            got
        })
    };
    let sent = out.expect("sent")?;
    let distinct = out.expect("processes")?;
    let _ = sim.wait();
    let outcome = agent.finish(sent)?;
    done.store(true, Ordering::Relaxed);
    samples.extend(sampler.join().unwrap_or_default());
    let secs = t.elapsed().as_secs_f64();
    // Warm-up: the first quarter of the stream (tables filling, allocator settling).
    let warm: Vec<f64> = samples
        .iter()
        .filter(|(n, _)| *n >= sent / 4)
        .map(|(_, r)| *r)
        .collect();
    if !warm.is_empty() {
        let mean = warm.iter().sum::<f64>() / warm.len() as f64;
        let (lo, hi) = warm
            .iter()
            .fold((f64::MAX, 0f64), |(lo, hi), r| (lo.min(*r), hi.max(*r)));
        println!(
            "soak after warm-up: {} samples, RSS {lo:.1}-{hi:.1} MiB, mean {mean:.1}, spread {:+.1}% / {:+.1}%",
            warm.len(),
            (lo / mean - 1.0) * 100.0,
            (hi / mean - 1.0) * 100.0
        );
    }
    println!(
        "soak distinct_processes={distinct} evicted={} reaped={} resets={}",
        outcome.cache.evicted, outcome.cache.reaped, outcome.cache.headers
    );
    Ok((sent, secs))
}

/// An rsyslogd of the benchmark's own on a free loopback port, writing each message with its
/// arrival time (`%timegenerated%`) to `out`.
struct Rsyslogd {
    child: Child,
    port: u16,
    out: PathBuf,
}

impl Rsyslogd {
    fn start(dir: &Path) -> Result<Rsyslogd, String> {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .map_err(|e| e.to_string())?
            .port();
        let out = dir.join("received.log");
        let conf = dir.join("rsyslog.conf");
        let work = dir.join("work");
        std::fs::create_dir_all(&work).map_err(|e| e.to_string())?;
        std::fs::write(
            &conf,
            format!(
                r#"global(workDirectory="{}" maxMessageSize="256k")
main_queue(queue.timeoutShutdown="60000")
module(load="imtcp")
input(type="imtcp" address="127.0.0.1" port="{port}")
template(name="lat" type="string" string="%timegenerated:::date-rfc3339% %msg%\n")
*.* action(type="omfile" file="{}" template="lat")
"#,
                work.display(),
                out.display()
            ),
        )
        .map_err(|e| e.to_string())?;
        let mut child = Command::new("rsyslogd")
            .args(["-n", "-f"])
            .arg(&conf)
            .arg("-i")
            .arg(dir.join("rsyslogd.pid"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .map_err(|e| format!("rsyslogd (apt-get install rsyslog): {e}"))?;
        let t0 = Instant::now();
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            if t0.elapsed() > Duration::from_secs(20) {
                let _ = child.kill();
                return Err("rsyslogd did not listen".into());
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        Ok(Rsyslogd { child, port, out })
    }

    /// Stops it (it writes out its queue on SIGTERM) and returns each message's latency in
    /// µs: arrival minus the `ts` the simulator stamped it with at its send.
    fn latencies(mut self) -> Result<Vec<f64>, String> {
        let _ = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status();
        let _ = self.child.wait();
        let text = std::fs::read_to_string(&self.out).map_err(|e| e.to_string())?;
        let mut lat_us: Vec<f64> = Vec::new();
        for line in text.lines() {
            let Some((when, msg)) = line.split_once(' ') else {
                continue;
            };
            let Some(arrived) = rfc3339_ns(when) else {
                continue;
            };
            let Some(json) = msg.find('{').map(|i| &msg[i..]) else {
                continue;
            };
            let Ok(v) = serde_json::from_str::<serde_json::Value>(json) else {
                continue;
            };
            if let Some(ts) = v.get("ts").and_then(|t| t.as_i64()) {
                lat_us.push((arrived - ts as i128) as f64 / 1000.0);
            }
        }
        lat_us.sort_by(f64::total_cmp);
        Ok(lat_us)
    }
}

/// The `p` quantile of sorted values.
fn quantile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    sorted[((sorted.len() as f64 - 1.0) * p).round() as usize]
}

/// The rule of the latency runs: every process event is an alert.
const EVERY_PE: &str =
    "- rule: process event\n  desc: every process event\n  condition: sf.type = PE\n  priority: low\n";

/// An alert-mode pipeline on `policy` sending to syslog TCP `port`.
fn alert_to_syslog(policy: &Path, port: u16) -> String {
    format!(
        r#"{{"pipeline":[
 {{"processor":"sysflowreader","handler":"flattener","in":"sysflow sysflowchan","out":"flat flattenerchan"}},
 {{"processor":"policyengine","in":"flat flattenerchan","out":"evt eventchan","mode":"alert","policies":"{}"}},
 {{"processor":"exporter","in":"evt eventchan","export":"syslog","syslog.proto":"tcp","syslog.host":"127.0.0.1","syslog.port":"{port}"}}]}}"#,
        policy.display()
    )
}

/// `-stage latency`: the simulator at `rate` records/s for `seconds`, every event stamped
/// with its send time; the agent alerts on process events and sends them to an rsyslogd of
/// its own (started here) over TCP; rsyslog writes each message with its arrival time.
/// Latency = arrival - send, per alert.
pub fn latency_stage(rate: u64, seconds: u64) -> Result<(u64, f64), String> {
    let dir = std::env::temp_dir().join(format!("sfbench-latency-{}", std::process::id()));
    std::fs::create_dir_all(&dir).map_err(|e| e.to_string())?;
    let rsyslog = Rsyslogd::start(&dir)?;
    let policy = dir.join("alerts.yaml");
    std::fs::write(&policy, EVERY_PE).map_err(|e| e.to_string())?;
    let agent = Agent::start(&alert_to_syslog(&policy, rsyslog.port))?;
    let mut sim = simulator(
        &agent.sock,
        &[
            "-stamp".into(),
            "-rate".into(),
            rate.to_string(),
            "-seconds".into(),
            seconds.to_string(),
        ],
    )?;
    let mut sout = SimOutput::new(&mut sim)?;
    sout.expect("ready")?;
    let sent = sout.expect("sent")?;
    let _ = sim.wait();
    let outcome = agent.finish(sent)?;
    let alerts = outcome.exported();
    let lat_us = rsyslog.latencies()?;
    println!(
        "latency rate={rate}/s records={sent} alerts={alerts} received={} p50_ms={:.2} p90_ms={:.2} p99_ms={:.2} max_ms={:.2}",
        lat_us.len(),
        quantile(&lat_us, 0.5) / 1000.0,
        quantile(&lat_us, 0.9) / 1000.0,
        quantile(&lat_us, 0.99) / 1000.0,
        lat_us.last().copied().unwrap_or(f64::NAN) / 1000.0
    );
    let _ = std::fs::remove_dir_all(&dir);
    if lat_us.len() as u64 != alerts {
        return Err(format!(
            "{} of {alerts} alerts reached rsyslog",
            lat_us.len()
        ));
    }
    Ok((sent, seconds as f64))
}

/// CPU seconds (user + system) of process `pid` so far.
fn proc_cpu_seconds(pid: u32) -> Option<f64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // Fields after the command name (which may hold spaces) start after the last ')'.
    let rest = &stat[stat.rfind(')')? + 2..];
    let f: Vec<&str> = rest.split_whitespace().collect();
    // utime and stime are fields 14 and 15 of the whole line: 11 and 12 after the state.
    let ticks = f.get(11)?.parse::<f64>().ok()? + f.get(12)?.parse::<f64>().ok()?;
    // SAFETY: sysconf has no preconditions.
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) } as f64;
    Some(ticks / hz.max(1.0))
}

/// CPU seconds of process `pid` so far, summed over its threads from the scheduler's own
/// account (`/proc/PID/task/*/schedstat`, nanoseconds). The tick-sampled `stat` figure charges
/// a whole 10 ms tick to whatever runs when the tick fires: an agent that wakes 200 times a
/// second for 60 µs gets 0 or 10 ms at each tick, which put ±30 % on 10-second figures near
/// 1 %. `None` without schedstats (a kernel built without them).
fn proc_cpu_precise(pid: u32) -> Option<f64> {
    let mut ns = 0u64;
    for t in std::fs::read_dir(format!("/proc/{pid}/task"))
        .ok()?
        .flatten()
    {
        let s = std::fs::read_to_string(t.path().join("schedstat")).ok()?;
        ns += s.split_whitespace().next()?.parse::<u64>().ok()?;
    }
    Some(ns as f64 / 1e9)
}

/// Context switches (voluntary, involuntary) of every thread of process `pid` so far.
fn proc_switches(pid: u32) -> (u64, u64) {
    let mut total = (0, 0);
    let Ok(tasks) = std::fs::read_dir(format!("/proc/{pid}/task")) else {
        return total;
    };
    for t in tasks.flatten() {
        let Ok(status) = std::fs::read_to_string(t.path().join("status")) else {
            continue;
        };
        for l in status.lines() {
            let v = |p: &str| l.strip_prefix(p).and_then(|v| v.trim().parse::<u64>().ok());
            if let Some(n) = v("voluntary_ctxt_switches:") {
                total.0 += n;
            } else if let Some(n) = v("nonvoluntary_ctxt_switches:") {
                total.1 += n;
            }
        }
    }
    total
}

/// `-stage live-cpu`: what the live agent costs the node at a collector's rate. The agent
/// (`-agent PATH`, default the `sfprocessor` beside this binary, so an older build can be
/// measured the same way) runs as a process of its own on a socket — enrich mode, JSON, the
/// null exporter — and the simulator sends `-rate` records/s for `-seconds` (rate 0: the
/// agent idles that long). Over the sending window: the agent's CPU (`/proc/PID/stat`), its
/// context switches summed over its threads, CPU per record. With `-latency`, the agent alerts
/// on every process event and sends the alerts to an rsyslogd of its own: latency p50/p99/max
/// from the collector's send to rsyslog's arrival, on the same run.
pub fn live_cpu_stage(a: &LiveArgs) -> Result<(u64, f64), String> {
    let dir = std::env::temp_dir().join(format!("sfbench-livecpu-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).map_err(|e| e.to_string())?;
    let agent_bin = match &a.agent {
        Some(p) => p.clone(),
        None => std::env::current_exe()
            .map_err(|e| e.to_string())?
            .with_file_name("sfprocessor"),
    };
    let rsyslog = if a.latency {
        Some(Rsyslogd::start(&dir)?)
    } else {
        None
    };
    let cfg_text = match &rsyslog {
        Some(r) => {
            let policy = dir.join("alerts.yaml");
            std::fs::write(&policy, EVERY_PE).map_err(|e| e.to_string())?;
            alert_to_syslog(&policy, r.port)
        }
        None => PASS_THROUGH.to_string(),
    };
    // `SFBENCH_LATENCY=8ms`: the socket driver's `batch.latency` (its default otherwise).
    let cfg_text = match std::env::var("SFBENCH_LATENCY") {
        Ok(l) if !l.is_empty() => cfg_text.replacen(
            r#"{"pipeline":["#,
            &format!(r#"{{"drivers":[{{"driver":"socket","batch.latency":"{l}"}}],"pipeline":["#),
            1,
        ),
        _ => cfg_text,
    };
    let cfg = dir.join("pipeline.json");
    std::fs::write(&cfg, cfg_text).map_err(|e| e.to_string())?;
    let sock = dir.join("sysflow.sock");
    let log = dir.join("agent.log");
    let mut agent = Command::new(&agent_bin)
        .arg("-config")
        .arg(&cfg)
        .args(["-driver", "socket", "-log", "warn"])
        .arg(&sock)
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&log).map_err(|e| e.to_string())?)
        .spawn()
        .map_err(|e| format!("{}: {e}", agent_bin.display()))?;
    let pid = agent.id();
    let t0 = Instant::now();
    while !sock.exists() {
        if t0.elapsed() > Duration::from_secs(30) {
            let _ = agent.kill();
            return Err(format!(
                "the agent did not listen: {}",
                std::fs::read_to_string(&log).unwrap_or_default()
            ));
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    // Settled: start-up work (policy compile, thread start) is not the steady state.
    std::thread::sleep(Duration::from_millis(500));
    let (cpu0, sw0, t);
    let sent = if a.rate == 0 {
        cpu0 = (proc_cpu_precise(pid), proc_cpu_seconds(pid).unwrap_or(0.0));
        sw0 = proc_switches(pid);
        t = Instant::now();
        std::thread::sleep(Duration::from_secs(a.seconds.max(1)));
        0
    } else {
        let mut sim = simulator(
            &sock,
            &[
                "-stamp".into(),
                "-rate".into(),
                a.rate.to_string(),
                "-seconds".into(),
                (a.warmup + a.seconds).to_string(),
            ],
        )?;
        let mut sout = SimOutput::new(&mut sim)?;
        sout.expect("ready")?;
        // The warm-up: the agent's tables and caches grow to their working size (fresh pages,
        // rehashes), which a months-long run does once.
        std::thread::sleep(Duration::from_secs(a.warmup));
        cpu0 = (proc_cpu_precise(pid), proc_cpu_seconds(pid).unwrap_or(0.0));
        sw0 = proc_switches(pid);
        t = Instant::now();
        let sent = sout.expect("sent")?;
        let _ = sim.wait();
        // What is still in flight at the end is the agent's too: a moment to finish it.
        std::thread::sleep(Duration::from_millis(100));
        // Records of the measured window: the simulator sends at a steady rate.
        let total = (a.warmup + a.seconds).max(1);
        sent * a.seconds.max(1) / total
    };
    let secs = t.elapsed().as_secs_f64();
    let ticks = proc_cpu_seconds(pid).unwrap_or(0.0) - cpu0.1;
    let cpu = match (proc_cpu_precise(pid), cpu0.0) {
        (Some(c1), Some(c0)) => c1 - c0,
        _ => ticks,
    };
    let sw1 = proc_switches(pid);
    let (vol, invol) = (sw1.0 - sw0.0, sw1.1 - sw0.1);
    let _ = Command::new("kill")
        .args(["-TERM", &pid.to_string()])
        .status();
    let _ = agent.wait();
    let records = sent.saturating_sub(1);
    println!(
        "live-cpu rate={}/s warmup={}s seconds={secs:.1} records={records} cpu_pct={:.2} cpu_pct_ticks={:.2} us_per_record={:.1} wakeups_per_sec={:.0} (voluntary {:.0}/s, involuntary {:.0}/s) agent={}",
        a.rate,
        a.warmup,
        cpu / secs * 100.0,
        ticks / secs * 100.0,
        if records > 0 { cpu / records as f64 * 1e6 } else { 0.0 },
        (vol + invol) as f64 / secs,
        vol as f64 / secs,
        invol as f64 / secs,
        agent_bin.display()
    );
    if let Some(r) = rsyslog {
        let lat_us = r.latencies()?;
        println!(
            "live-latency rate={}/s alerts={} p50_ms={:.2} p99_ms={:.2} max_ms={:.2}",
            a.rate,
            lat_us.len(),
            quantile(&lat_us, 0.5) / 1000.0,
            quantile(&lat_us, 0.99) / 1000.0,
            lat_us.last().copied().unwrap_or(f64::NAN) / 1000.0
        );
    }
    let _ = std::fs::remove_dir_all(&dir);
    Ok((records, secs))
}

/// Nanoseconds since the epoch of an RFC 3339 time with a fraction and an offset
/// (`2026-11-25T16:00:00.123456+00:00`), as rsyslog writes `date-rfc3339`.
fn rfc3339_ns(s: &str) -> Option<i128> {
    let (date, rest) = s.split_once('T')?;
    let mut d = date.split('-').map(|x| x.parse::<i64>());
    let (y, m, day) = (d.next()?.ok()?, d.next()?.ok()?, d.next()?.ok()?);
    let tz_at = rest.rfind(['+', '-'])?;
    let (time, tz) = rest.split_at(tz_at);
    let (hms, frac) = time.split_once('.').unwrap_or((time, "0"));
    let mut t = hms.split(':').map(|x| x.parse::<i64>());
    let (hh, mm, ss) = (t.next()?.ok()?, t.next()?.ok()?, t.next()?.ok()?);
    let frac_ns: i64 = format!("{frac:0<9}")[..9].parse().ok()?;
    let sign = if tz.starts_with('-') { -1 } else { 1 };
    let (th, tm) = tz[1..].split_once(':')?;
    let off = sign * (th.parse::<i64>().ok()? * 3600 + tm.parse::<i64>().ok()? * 60);
    // Days from the civil date (Howard Hinnant's algorithm).
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    let secs = days * 86_400 + hh * 3600 + mm * 60 + ss - off;
    Some(secs as i128 * 1_000_000_000 + frac_ns as i128)
}

fn now_ns() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_nanos() as i64)
        .unwrap_or(0)
}

fn zigzag(v: i64, out: &mut Vec<u8>) {
    let mut z = ((v << 1) ^ (v >> 63)) as u64;
    while z >= 0x80 {
        out.push((z as u8) | 0x80);
        z >>= 7;
    }
    out.push(z as u8);
}

/// End of the varint at `at`.
fn varint_end(d: &[u8], mut at: usize) -> Option<usize> {
    while *d.get(at)? & 0x80 != 0 {
        at += 1;
    }
    Some(at + 1)
}

/// `datum` with its event/flow `ts` set to `ts`: every event and flow (union branches 4 to 9
/// in schema v5) starts with the process OID (two longs) and then `ts`, so the new value is
/// spliced in without re-encoding the record. `None` for other records.
fn restamp(datum: &[u8], ts: i64, out: &mut Vec<u8>) -> Option<()> {
    let b = *datum.first()?;
    if !(8..=18).contains(&b) {
        // zigzag(4..=9) = 8..=18, one byte.
        return None;
    }
    let oid_end = varint_end(datum, varint_end(datum, 1)?)?;
    let ts_end = varint_end(datum, oid_end)?;
    out.clear();
    out.extend_from_slice(&datum[..oid_end]);
    zigzag(ts, out);
    out.extend_from_slice(&datum[ts_end..]);
    Some(())
}

/// `-stamp`: a pool of generated records encoded once, sent round and round at `rate` for
/// `seconds`, each event's `ts` set to its send time (the latency benchmark).
fn stamped(
    sock: &Path,
    a: &LiveArgs,
    v5: &apache_avro::Schema,
    stop: Arc<AtomicBool>,
) -> Result<(), String> {
    let pool_size = (a.rate.max(1) * 4).clamp(10_000, 400_000);
    let mut pool = Vec::new();
    let mut header = None;
    let mut enc = DatumEncoder::new(v5, SchemaVersion::V5).map_err(|e| e.to_string())?;
    for r in Generator::new(GenConfig {
        seed: 78,
        records: pool_size,
        ..Default::default()
    }) {
        let d = enc.encode(&r).map_err(|e| e.to_string())?;
        if matches!(r, SysFlow::Header(_)) {
            header.get_or_insert(d);
        } else {
            pool.push(d);
        }
    }
    let header = header.ok_or("no header")?;
    let mut c = Collector::new(sock, header, false, stop);
    println!("ready");
    let _ = std::io::stdout().flush();
    c.open().map_err(|e| e.to_string())?;
    let mut pace = Pace::new(a.rate);
    let until = Instant::now() + Duration::from_secs(a.seconds.max(1));
    let mut buf = Vec::with_capacity(4096);
    'outer: loop {
        for d in &pool {
            if Instant::now() >= until {
                break 'outer;
            }
            pace.wait();
            let bytes: &[u8] = match restamp(d, now_ns(), &mut buf) {
                Some(()) => &buf,
                None => d,
            };
            c.send(bytes, false).map_err(|e| e.to_string())?;
        }
    }
    println!("sent {}", c.report.packets);
    let _ = std::io::stdout().flush();
    Ok(())
}

/// `-stage simulate`: the collector. `-trace T`: the trace's datums preloaded, then sent as
/// fast as the agent takes them. `-records N [-distinct]`: generated records streamed.
/// `-stamp -rate R -seconds S`: generated records at R/s for S seconds, each event's `ts` set
/// to its send time. Prints `ready`, then `sent N` (packets, headers included).
pub fn simulate(trace: Option<&Path>, a: &LiveArgs) -> Result<(), String> {
    let sock = a.socket.clone().ok_or("-socket PATH")?;
    let stop = Arc::new(AtomicBool::new(false));
    let say = |s: String| {
        println!("{s}");
        let _ = std::io::stdout().flush();
    };
    if let Some(t) = trace {
        // Preloaded: one buffer and the packet lengths.
        let mut data = Vec::new();
        let mut lens = Vec::new();
        for d in sim::trace_datums(t)? {
            let (bytes, _) = d?;
            lens.push(bytes.len());
            data.extend_from_slice(&bytes);
        }
        let header = data[..lens[0]].to_vec();
        let mut c = Collector::new(&sock, header, false, stop);
        say("ready".into());
        c.open().map_err(|e| e.to_string())?;
        // 64 packets per system call: the simulator should cost the machine little.
        let mut at = lens[0];
        let mut chunk: Vec<&[u8]> = Vec::with_capacity(64);
        for n in &lens[1..] {
            chunk.push(&data[at..at + n]);
            at += n;
            if chunk.len() == 64 {
                c.send_many(&chunk).map_err(|e| e.to_string())?;
                chunk.clear();
            }
        }
        c.send_many(&chunk).map_err(|e| e.to_string())?;
        say(format!("sent {}", c.report.packets));
        return Ok(());
    }
    let v5 = schema(SchemaVersion::V5).map_err(|e| e.to_string())?;
    if a.stamp {
        return stamped(&sock, a, &v5, stop);
    }
    let records = a.records.max(1);
    let mut gen = Generator::new(GenConfig {
        seed: 77,
        records,
        distinct_files: a.distinct,
        // The soak's stream: about one record in fifteen belongs to a new process.
        churn_permille: if a.distinct { 120 } else { 0 },
        ..Default::default()
    })
    .peekable();
    let mut enc = DatumEncoder::new(&v5, SchemaVersion::V5).map_err(|e| e.to_string())?;
    let first = gen.next().ok_or("no records")?;
    let header = enc.encode(&first).map_err(|e| e.to_string())?;
    let mut c = Collector::new(&sock, header, false, stop);
    say("ready".into());
    c.open().map_err(|e| e.to_string())?;
    let mut processes = 0u64;
    for r in gen {
        if let SysFlow::Process(p) = &r {
            if p.state == sfprocessor::sysflow::ObjectState::Created {
                processes += 1;
            }
        }
        let is_header = matches!(r, SysFlow::Header(_));
        let d = enc.encode(&r).map_err(|e| e.to_string())?;
        c.send(&d, is_header).map_err(|e| e.to_string())?;
    }
    say(format!("sent {}", c.report.packets));
    say(format!("processes {processes}"));
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn restamping_changes_only_the_event_time() {
        let v5 = schema(SchemaVersion::V5).unwrap();
        use sfprocessor::sysflow::writer::encode_datum;
        let plan = sfprocessor::sysflow::DatumPlan::compile(
            &sfprocessor::sysflow::writer::schema_json(SchemaVersion::V5),
        )
        .unwrap();
        let mut n = 0;
        for r in Generator::new(GenConfig {
            seed: 3,
            records: 300,
            ..Default::default()
        }) {
            let d = encode_datum(&v5, &r, SchemaVersion::V5).unwrap();
            let mut out = Vec::new();
            let ts = 1_795_618_800_123_456_789;
            match restamp(&d, ts, &mut out) {
                None => assert!(
                    !matches!(
                        r,
                        SysFlow::ProcessEvent(_)
                            | SysFlow::FileEvent(_)
                            | SysFlow::NetworkEvent(_)
                            | SysFlow::FileFlow(_)
                            | SysFlow::NetworkFlow(_)
                            | SysFlow::ProcessFlow(_)
                    ),
                    "{r:?}"
                ),
                Some(()) => {
                    n += 1;
                    let got = sfprocessor::sysflow::stream::decode_packet(&plan, &out).unwrap();
                    let sfprocessor::sysflow::Decoded::Record(mut got) = got else {
                        panic!()
                    };
                    let json_ts = |x: &SysFlow| format!("{x:?}").contains(&format!("ts: {ts}"));
                    assert!(json_ts(&got), "{got:?}");
                    let mut want = r.clone();
                    set_ts(&mut want, ts);
                    set_ts(&mut got, ts);
                    assert_eq!(got, want);
                }
            }
        }
        assert!(n > 100);
    }

    fn set_ts(r: &mut SysFlow, ts: i64) {
        match r {
            SysFlow::ProcessEvent(e) => e.ts = ts,
            SysFlow::FileEvent(e) => e.ts = ts,
            SysFlow::NetworkEvent(e) => e.ts = ts,
            SysFlow::FileFlow(f) => f.ts = ts,
            SysFlow::NetworkFlow(f) => f.ts = ts,
            SysFlow::ProcessFlow(f) => f.ts = ts,
            _ => {}
        }
    }

    #[test]
    fn rsyslog_times_parse_to_nanoseconds() {
        assert_eq!(
            rfc3339_ns("1970-01-01T00:00:01.5+00:00"),
            Some(1_500_000_000)
        );
        assert_eq!(
            rfc3339_ns("2026-11-25T15:00:00.000001+00:00"),
            Some(1_795_618_800_000_001_000)
        );
        assert_eq!(
            rfc3339_ns("2026-11-25T16:00:00.000001+01:00"),
            rfc3339_ns("2026-11-25T15:00:00.000001+00:00")
        );
    }
}
