//! Kafka-API helpers for tests: create a topic, read it back from every partition.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::{Message, Offset, TopicPartitionList};

pub fn create_topic(port: u16, topic: &str, partitions: i32) {
    let admin: AdminClient<DefaultClientContext> = ClientConfig::new()
        .set("bootstrap.servers", format!("127.0.0.1:{port}"))
        .create()
        .expect("admin client");
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .build()
        .unwrap();
    let r = rt
        .block_on(admin.create_topics(
            &[NewTopic::new(topic, partitions, TopicReplication::Fixed(1))],
            &AdminOptions::new().operation_timeout(Some(Duration::from_secs(10))),
        ))
        .expect("create_topics");
    for t in r {
        t.expect("topic created");
    }
}

pub struct Consumed {
    pub partition: i32,
    pub key: Option<Vec<u8>>,
    pub payload: String,
}

/// Reads `topic` from offset 0 of every partition until `want` messages arrived and nothing
/// more came for a while (so duplicates would show), or no message came for 20 s.
pub fn consume(port: u16, topic: &str, want: usize) -> Vec<Consumed> {
    let c: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", format!("127.0.0.1:{port}"))
        .set("group.id", "sfprocessor-test")
        .set("enable.auto.commit", "false")
        .set("auto.offset.reset", "earliest")
        .create()
        .expect("consumer");
    let md = c
        .fetch_metadata(Some(topic), Duration::from_secs(10))
        .expect("metadata");
    let parts = md
        .topics()
        .iter()
        .find(|t| t.name() == topic)
        .map(|t| t.partitions().len())
        .unwrap_or(0);
    assert!(parts > 0, "topic {topic} has no partitions");
    let mut tpl = TopicPartitionList::new();
    for p in 0..parts as i32 {
        tpl.add_partition_offset(topic, p, Offset::Beginning)
            .unwrap();
    }
    c.assign(&tpl).expect("assign");
    let mut got = Vec::new();
    let mut idle = 0;
    // Polls of 100 ms: stop after 200 empty ones, or 20 empty ones once `want` arrived.
    while idle < if got.len() >= want { 20 } else { 200 } {
        match c.poll(Duration::from_millis(100)) {
            Some(Ok(m)) => {
                idle = 0;
                got.push(Consumed {
                    partition: m.partition(),
                    key: m.key().map(<[u8]>::to_vec),
                    payload: String::from_utf8(m.payload().unwrap_or_default().to_vec())
                        .expect("UTF-8 payload"),
                });
            }
            Some(Err(e)) => panic!("consumer: {e}"),
            None => idle += 1,
        }
    }
    got
}

/// A consumer that reads the topic as it fills, on its own thread: the broker keeps messages
/// in memory, so what it held before a kill must have been read before the kill. After each
/// restart (`generation` bumped by the test) it reads the new broker from offset 0.
pub struct LiveConsumer {
    pub generation: Arc<AtomicUsize>,
    pub stop: Arc<AtomicBool>,
    pub read: Arc<AtomicUsize>,
    /// Read from the current broker (since the last restart).
    pub read_gen: Arc<AtomicUsize>,
    pub handle: std::thread::JoinHandle<Vec<String>>,
}

impl LiveConsumer {
    pub fn start(port: u16, topic: &'static str) -> LiveConsumer {
        let generation = Arc::new(AtomicUsize::new(0));
        let stop = Arc::new(AtomicBool::new(false));
        let read = Arc::new(AtomicUsize::new(0));
        let read_gen = Arc::new(AtomicUsize::new(0));
        let (g, st, r, rg) = (
            generation.clone(),
            stop.clone(),
            read.clone(),
            read_gen.clone(),
        );
        let handle = std::thread::spawn(move || {
            let mut got = Vec::new();
            let mut seen_gen = usize::MAX;
            let mut consumer: Option<BaseConsumer> = None;
            let mut idle = 0;
            while !(st.load(Ordering::SeqCst) && idle > 20) {
                let gen = g.load(Ordering::SeqCst);
                if gen != seen_gen || consumer.is_none() {
                    consumer = assign_from_start(port, topic);
                    if consumer.is_none() {
                        std::thread::sleep(Duration::from_millis(100));
                        continue;
                    }
                    seen_gen = gen;
                    rg.store(0, Ordering::SeqCst);
                }
                let Some(c) = &consumer else { continue };
                match c.poll(Duration::from_millis(100)) {
                    Some(Ok(m)) => {
                        idle = 0;
                        got.push(
                            String::from_utf8(m.payload().unwrap_or_default().to_vec())
                                .expect("UTF-8 payload"),
                        );
                        r.store(got.len(), Ordering::SeqCst);
                        rg.fetch_add(1, Ordering::SeqCst);
                    }
                    // The broker went away: the next generation reconnects.
                    Some(Err(_)) | None => idle += 1,
                }
            }
            got
        });
        LiveConsumer {
            generation,
            stop,
            read,
            read_gen,
            handle,
        }
    }
}

/// A consumer assigned to every partition of `topic` from offset 0, once the topic exists.
pub fn assign_from_start(port: u16, topic: &str) -> Option<BaseConsumer> {
    let c: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", format!("127.0.0.1:{port}"))
        .set("group.id", "sfprocessor-live")
        .set("enable.auto.commit", "false")
        .set("auto.offset.reset", "earliest")
        .create()
        .ok()?;
    let md = c.fetch_metadata(Some(topic), Duration::from_secs(2)).ok()?;
    let t = md.topics().iter().find(|t| t.name() == topic)?;
    if t.error().is_some() || t.partitions().is_empty() {
        return None;
    }
    let mut tpl = TopicPartitionList::new();
    for p in t.partitions() {
        tpl.add_partition_offset(topic, p.id(), Offset::Beginning)
            .ok()?;
    }
    c.assign(&tpl).ok()?;
    Some(c)
}
