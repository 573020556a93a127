//! `sfprint -o tree`: the trace's process forest. Each process is shown under its parent with
//! its command line, the commands it exec'd, its container when it differs from its
//! parent's, its file and network activity and (with `-p`) the rules its records triggered,
//! so an attack's chain reads top to bottom.
//!
//! Memory grows with the number of processes, not records: one node per process, counters
//! and a short list of rule names per node.

use std::io::{self, Write};
use std::sync::Arc;

use rustc_hash::FxHashMap;

use crate::record::{Event, Record};
use crate::sysflow::model::{Oid, Process};
use crate::sysflow::names::{OP_CLONE, OP_EXEC, OP_EXIT};

/// At most this many distinct commands are kept per process (a process that execs more is
/// shown with the first ones and a count).
const MAX_EXECS: usize = 8;
/// At most this many distinct rules are kept per process (with a count of the others).
const MAX_RULES: usize = 16;

#[derive(Debug, Default)]
struct Node {
    oid: Oid,
    poid: Option<Oid>,
    /// Command lines in the order seen (the first, then each exec'd one).
    cmds: Vec<String>,
    more_cmds: u64,
    container: String,
    user: String,
    files: u64,
    net: u64,
    execs: u64,
    clones: u64,
    exited: bool,
    rules: Vec<(Arc<str>, u64)>,
    more_rules: u64,
}

/// Builds the forest from records, then prints it.
#[derive(Default)]
pub struct Forest {
    index: FxHashMap<Oid, u32>,
    nodes: Vec<Node>,
    records: u64,
    without_process: u64,
    alerts: u64,
}

fn cmdline(p: &Process) -> String {
    if p.exe_args.is_empty() {
        p.exe.clone()
    } else {
        format!("{} {}", p.exe, p.exe_args)
    }
}

impl Forest {
    fn node(&mut self, p: &Process) -> usize {
        let i = match self.index.get(&p.oid) {
            Some(i) => *i as usize,
            None => {
                let i = self.nodes.len();
                self.index.insert(p.oid, i as u32);
                self.nodes.push(Node {
                    oid: p.oid,
                    ..Default::default()
                });
                i
            }
        };
        let n = &mut self.nodes[i];
        if n.poid.is_none() {
            n.poid = p.poid;
        }
        let cmd = cmdline(p);
        if n.cmds.last() != Some(&cmd) {
            if n.cmds.len() < MAX_EXECS {
                n.cmds.push(cmd);
            } else {
                n.more_cmds += 1;
            }
        }
        if n.container.is_empty() {
            if let Some(c) = &p.container_id {
                n.container = c.clone();
            }
        }
        if n.user.is_empty() {
            n.user = p.user_name.clone();
        }
        i
    }

    /// Adds one record (after any policies ran on it).
    pub fn add(&mut self, rec: &Record) {
        self.records += 1;
        let Some(p) = rec.process.as_deref() else {
            self.without_process += 1;
            return;
        };
        // Parents first, so a process seen only as a parent is in the tree too.
        for a in rec.ancestors.iter() {
            self.node(a);
        }
        let i = self.node(p);
        let n = &mut self.nodes[i];
        match &rec.event {
            Event::FileFlow(_) | Event::FileEvent(_) => n.files += 1,
            Event::NetworkFlow(_) | Event::NetworkEvent(_) => n.net += 1,
            Event::ProcessEvent(e) => {
                if e.op_flags & OP_EXEC != 0 {
                    n.execs += 1;
                }
                if e.op_flags & OP_CLONE != 0 {
                    n.clones += 1;
                }
                if e.op_flags & OP_EXIT != 0 {
                    n.exited = true;
                }
            }
            _ => {}
        }
        for m in &rec.policies {
            self.alerts += 1;
            if let Some((_, c)) = n.rules.iter_mut().find(|(r, _)| *r == m.id) {
                *c += 1;
            } else if n.rules.len() < MAX_RULES {
                n.rules.push((m.id.clone(), 1));
            } else {
                n.more_rules += 1;
            }
        }
    }

    /// Prints the forest, `width` columns wide (lines are cut with `…`).
    pub fn print(&self, out: &mut impl Write, width: usize) -> io::Result<()> {
        let width = width.max(40);
        let mut children: Vec<Vec<u32>> = vec![Vec::new(); self.nodes.len()];
        let mut roots = Vec::new();
        for (i, n) in self.nodes.iter().enumerate() {
            match n.poid.and_then(|p| self.index.get(&p)) {
                Some(&pi) if pi as usize != i => children[pi as usize].push(i as u32),
                _ => roots.push(i as u32),
            }
        }
        let key = |i: &u32| {
            let n = &self.nodes[*i as usize];
            (n.oid.create_ts, n.oid.hpid)
        };
        roots.sort_by_key(key);
        for c in &mut children {
            c.sort_by_key(key);
        }
        let with_rules = self.nodes.iter().filter(|n| !n.rules.is_empty()).count();
        let mut head = format!(
            "{} processes ({} roots), {} records",
            self.nodes.len(),
            roots.len(),
            self.records
        );
        if self.without_process > 0 {
            head.push_str(&format!(", {} without a process", self.without_process));
        }
        if self.alerts > 0 {
            head.push_str(&format!(
                ", {} rule matches in {with_rules} processes",
                self.alerts
            ));
        }
        line(out, &head, width)?;
        // Depth-first with an explicit stack: traces can hold very deep chains.
        // Stack entries: (node, prefix for its line, prefix for its children, parent node).
        let mut stack: Vec<(u32, String, String, Option<u32>)> = Vec::new();
        for r in roots.iter().rev() {
            stack.push((*r, String::new(), String::new(), None));
        }
        let mut seen = vec![false; self.nodes.len()];
        while let Some((i, lead, indent, parent)) = stack.pop() {
            if std::mem::replace(&mut seen[i as usize], true) {
                continue;
            }
            let n = &self.nodes[i as usize];
            let parent = parent.map(|p| &self.nodes[p as usize]);
            let parent_cont = parent.map_or("", |p| p.container.as_str());
            let parent_user = parent.map_or("", |p| p.user.as_str());
            let mut head = format!("{lead}{} {}", n.oid.hpid, n.cmds.first().map_or("", |c| c));
            if n.container != parent_cont && !n.container.is_empty() {
                head.push_str(&format!("  [container {}]", short(&n.container)));
            }
            line(out, &head, width)?;
            let kids = &children[i as usize];
            let body = format!("{indent}{}  ", if kids.is_empty() { " " } else { "│" });
            let body = compress(&body);
            for c in n.cmds.iter().skip(1) {
                line(out, &format!("{body}exec → {c}"), width)?;
            }
            if n.more_cmds > 0 {
                line(out, &format!("{body}exec → … {} more", n.more_cmds), width)?;
            }
            let mut facts = Vec::new();
            // The user is shown where it changes (at the roots, and e.g. after sshd or sudo).
            if !n.user.is_empty() && n.user != parent_user {
                facts.push(format!("user {}", n.user));
            }
            if n.files > 0 {
                facts.push(format!("files {}", n.files));
            }
            if n.net > 0 {
                facts.push(format!("net {}", n.net));
            }
            if n.clones > 0 {
                facts.push(format!("clones {}", n.clones));
            }
            if n.exited {
                facts.push("exited".to_string());
            }
            if !facts.is_empty() {
                line(out, &format!("{body}{}", facts.join(" · ")), width)?;
            }
            for (r, c) in &n.rules {
                line(out, &format!("{body}! {r} ×{c}"), width)?;
            }
            if n.more_rules > 0 {
                line(out, &format!("{body}! … {} more", n.more_rules), width)?;
            }
            for (k, c) in kids.iter().enumerate().rev() {
                let last = k + 1 == kids.len();
                let lead = compress(&format!("{indent}{}", if last { "└─ " } else { "├─ " }));
                let next = format!("{indent}{}", if last { "   " } else { "│  " });
                stack.push((*c, lead, next, Some(i)));
            }
        }
        Ok(())
    }
}

/// Container ids are shown as Docker does (12 characters).
fn short(id: &str) -> &str {
    match id.char_indices().nth(12) {
        Some((i, _)) => &id[..i],
        None => id,
    }
}

/// Indentation past 30 columns is folded (`┆` and the depth's tail), so deep chains stay
/// readable at 80 columns.
fn compress(prefix: &str) -> String {
    const MAX: usize = 30;
    let n = prefix.chars().count();
    if n <= MAX {
        return prefix.to_string();
    }
    let tail: String = prefix.chars().skip(n - (MAX - 4)).collect();
    format!("┆{:>3}{tail}", n / 3)
}

/// Writes `s` cut to `width` characters.
fn line(out: &mut impl Write, s: &str, width: usize) -> io::Result<()> {
    let n = s.chars().count();
    if n <= width {
        writeln!(out, "{s}")
    } else {
        let cut: String = s.chars().take(width - 1).collect();
        writeln!(out, "{cut}…")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sysflow::model::{Header, ProcessEvent};

    fn proc(pid: i64, ppid: Option<i64>, exe: &str) -> Arc<Process> {
        Arc::new(Process {
            oid: Oid {
                create_ts: pid,
                hpid: pid,
            },
            poid: ppid.map(|p| Oid {
                create_ts: p,
                hpid: p,
            }),
            exe: exe.to_string(),
            ..Default::default()
        })
    }

    fn rec(p: &Arc<Process>, parents: Vec<Arc<Process>>, flags: i32) -> Record {
        let mut r = Record::new(
            Event::ProcessEvent(ProcessEvent {
                proc_oid: p.oid,
                op_flags: flags,
                ..Default::default()
            }),
            Arc::new(Header::default()),
            Arc::from(parents),
        );
        r.process = Some(p.clone());
        r
    }

    #[test]
    fn children_nest_under_parents_in_creation_order() {
        let sh = proc(1, None, "/bin/sh");
        let b = proc(3, Some(1), "/bin/b");
        let a = proc(2, Some(1), "/bin/a");
        let mut f = Forest::default();
        f.add(&rec(&b, vec![sh.clone()], OP_EXEC));
        f.add(&rec(&a, vec![sh.clone()], OP_EXEC | OP_EXIT));
        let mut out = Vec::new();
        f.print(&mut out, 80).unwrap();
        let text = String::from_utf8(out).unwrap();
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines[0], "3 processes (1 roots), 2 records");
        assert_eq!(lines[1], "1 /bin/sh");
        assert_eq!(lines[2], "├─ 2 /bin/a");
        assert_eq!(lines[3], "│     exited");
        assert_eq!(lines[4], "└─ 3 /bin/b");
    }

    #[test]
    fn deep_chains_fold_and_lines_fit_the_width() {
        let mut f = Forest::default();
        let mut chain: Vec<Arc<Process>> = Vec::new();
        for pid in 1..=200 {
            let p = proc(pid, (pid > 1).then_some(pid - 1), &"x".repeat(100));
            let parents: Vec<_> = chain.iter().rev().cloned().collect();
            f.add(&rec(&p, parents, 0));
            chain.push(p);
        }
        let mut out = Vec::new();
        f.print(&mut out, 80).unwrap();
        let text = String::from_utf8(out).unwrap();
        assert_eq!(text.lines().count(), 201);
        assert!(text.lines().all(|l| l.chars().count() <= 80));
        assert!(text.contains("┆"));
    }
}
