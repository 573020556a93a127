//! What an entity takes in memory, estimated from its strings and arrays: the entity tables
//! are bounded in bytes as well as in entries, since one process with a megabyte of
//! environment weighs as much as a thousand ordinary ones.

use std::mem::size_of;

use crate::sysflow::model::{Container, File, Pod, Process};

/// Heap bytes of a string kept in a `Vec<String>` (its bytes and its `String`).
fn item(s: &str) -> usize {
    s.len() + size_of::<String>()
}

pub trait Footprint {
    /// Bytes this entity holds, its own struct included.
    fn footprint(&self) -> usize;
}

impl Footprint for Process {
    fn footprint(&self) -> usize {
        size_of::<Process>()
            + self.exe.len()
            + self.exe_args.len()
            + self.user_name.len()
            + self.group_name.len()
            + self.cwd.len()
            + self.container_id.as_deref().map_or(0, str::len)
            + self.env.iter().map(|e| item(e)).sum::<usize>()
    }
}

impl Footprint for File {
    fn footprint(&self) -> usize {
        size_of::<File>() + self.path.len() + self.container_id.as_deref().map_or(0, str::len)
    }
}

impl Footprint for Container {
    fn footprint(&self) -> usize {
        size_of::<Container>()
            + self.id.len()
            + self.name.len()
            + self.image.len()
            + self.imageid.len()
            + self.pod_id.as_deref().map_or(0, str::len)
    }
}

impl Footprint for Pod {
    fn footprint(&self) -> usize {
        let pairs =
            |v: &[(String, String)]| -> usize { v.iter().map(|(k, x)| item(k) + item(x)).sum() };
        size_of::<Pod>()
            + self.id.len()
            + self.name.len()
            + self.node_name.len()
            + self.namespace.len()
            + (self.host_ip.len() + self.internal_ip.len()) * size_of::<i64>()
            + pairs(&self.labels)
            + pairs(&self.selectors)
            + self.services.len() * 256
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_environment_weighs_what_its_strings_do() {
        let small = Process::default().footprint();
        let big = Process {
            env: vec!["X=".repeat(500); 1000],
            ..Default::default()
        };
        assert_eq!(big.footprint(), small + 1000 * (1000 + size_of::<String>()));
    }
}
