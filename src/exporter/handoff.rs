//! The bounded queue between an exporter node and its delivery worker.
//!
//! Why not `std::sync::mpsc::sync_channel`: its sender wakes a sleeping receiver while still
//! holding the channel's waker lock, so on a machine with a free core the receiver wakes,
//! finds the lock taken, sleeps on it and is woken a second time when the sender lets go —
//! two context switches per hand-off (measured with strace on the live agent: a futex wait
//! on the lock right after every wake-up). At a collector's usual rates a hand-off carries a
//! few records, so that second wake-up was a visible part of the agent's CPU. Here the
//! sender notifies after releasing the lock: one wake-up per hand-off, and none when the
//! worker is busy (it finds the next payload without sleeping).

use std::collections::VecDeque;
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::time::{Duration, Instant};

struct State<T> {
    items: VecDeque<T>,
    /// The sending side was dropped: once `items` is empty the receiver sees the end.
    sender_gone: bool,
    /// The receiving side was dropped: sends fail.
    receiver_gone: bool,
    /// The receiver is waiting for an item (the sender notifies only then).
    receiver_waiting: bool,
    /// Senders waiting for room.
    senders_waiting: usize,
}

struct Shared<T> {
    state: Mutex<State<T>>,
    /// Signalled when an item arrives or the sender goes.
    not_empty: Condvar,
    /// Signalled when an item is taken or the receiver goes.
    not_full: Condvar,
    capacity: usize,
}

impl<T> Shared<T> {
    /// The state, also after a panic elsewhere poisoned the lock (the queue's own updates
    /// never leave it half-done).
    fn lock(&self) -> MutexGuard<'_, State<T>> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// Why a send did not queue its item (given back).
#[derive(Debug, PartialEq, Eq)]
pub enum SendError<T> {
    /// The queue is full (`try_send` only).
    Full(T),
    /// The receiver is gone.
    Closed(T),
}

/// Why a receive returned nothing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RecvError {
    /// Nothing arrived in time.
    Timeout,
    /// The sender is gone and everything it sent was taken.
    Closed,
}

/// The sending side (the exporter node).
pub struct Sender<T>(Arc<Shared<T>>);

/// The receiving side (the delivery worker).
pub struct Receiver<T>(Arc<Shared<T>>);

/// A queue holding at most `capacity` items (at least one).
pub fn bounded<T>(capacity: usize) -> (Sender<T>, Receiver<T>) {
    let shared = Arc::new(Shared {
        state: Mutex::new(State {
            items: VecDeque::with_capacity(capacity.max(1)),
            sender_gone: false,
            receiver_gone: false,
            receiver_waiting: false,
            senders_waiting: 0,
        }),
        not_empty: Condvar::new(),
        not_full: Condvar::new(),
        capacity: capacity.max(1),
    });
    (Sender(shared.clone()), Receiver(shared))
}

impl<T> Sender<T> {
    /// Queues `item`, waiting for room.
    pub fn send(&self, item: T) -> Result<(), SendError<T>> {
        let q = &self.0;
        let mut s = q.lock();
        while s.items.len() >= q.capacity && !s.receiver_gone {
            s.senders_waiting += 1;
            s = q.not_full.wait(s).unwrap_or_else(|e| e.into_inner());
            s.senders_waiting -= 1;
        }
        self.push(s, item)
    }

    /// Queues `item` if there is room now.
    pub fn try_send(&self, item: T) -> Result<(), SendError<T>> {
        let s = self.0.lock();
        if s.items.len() >= self.0.capacity && !s.receiver_gone {
            return Err(SendError::Full(item));
        }
        self.push(s, item)
    }

    fn push(&self, mut s: MutexGuard<'_, State<T>>, item: T) -> Result<(), SendError<T>> {
        if s.receiver_gone {
            return Err(SendError::Closed(item));
        }
        s.items.push_back(item);
        let wake = s.receiver_waiting;
        drop(s);
        if wake {
            self.0.not_empty.notify_one();
        }
        Ok(())
    }
}

impl<T> Drop for Sender<T> {
    fn drop(&mut self) {
        let mut s = self.0.lock();
        s.sender_gone = true;
        drop(s);
        self.0.not_empty.notify_all();
    }
}

impl<T> Receiver<T> {
    /// The next item, waiting at most `timeout` (zero: only what is queued now).
    pub fn recv_timeout(&self, timeout: Duration) -> Result<T, RecvError> {
        let q = &self.0;
        let deadline = Instant::now().checked_add(timeout);
        let mut s = q.lock();
        loop {
            if let Some(item) = s.items.pop_front() {
                let wake = s.senders_waiting > 0;
                drop(s);
                if wake {
                    q.not_full.notify_one();
                }
                return Ok(item);
            }
            if s.sender_gone {
                return Err(RecvError::Closed);
            }
            // A deadline past what `Instant` holds is waited for in hour-long steps.
            let left = match deadline {
                Some(d) => d.saturating_duration_since(Instant::now()),
                None => Duration::from_secs(3600),
            };
            if left.is_zero() {
                return Err(RecvError::Timeout);
            }
            s.receiver_waiting = true;
            let (guard, _) = q
                .not_empty
                .wait_timeout(s, left)
                .unwrap_or_else(|e| e.into_inner());
            s = guard;
            s.receiver_waiting = false;
        }
    }
}

impl<T> Drop for Receiver<T> {
    fn drop(&mut self) {
        let mut s = self.0.lock();
        s.receiver_gone = true;
        drop(s);
        self.0.not_full.notify_all();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn items_come_out_in_order_and_the_end_after_the_last() {
        let (tx, rx) = bounded(2);
        let t = std::thread::spawn(move || {
            for i in 0..1000 {
                tx.send(i).unwrap();
            }
        });
        let mut got = Vec::new();
        loop {
            match rx.recv_timeout(Duration::from_secs(10)) {
                Ok(i) => got.push(i),
                Err(RecvError::Closed) => break,
                Err(RecvError::Timeout) => panic!("stalled after {}", got.len()),
            }
        }
        t.join().unwrap();
        assert_eq!(got, (0..1000).collect::<Vec<_>>());
    }

    #[test]
    fn a_full_queue_blocks_send_and_refuses_try_send() {
        let (tx, rx) = bounded(1);
        tx.send(1).unwrap();
        assert_eq!(tx.try_send(2), Err(SendError::Full(2)));
        let t = std::thread::spawn(move || {
            tx.send(3).unwrap();
        });
        std::thread::sleep(Duration::from_millis(50));
        assert!(!t.is_finished(), "send waits for room");
        assert_eq!(rx.recv_timeout(Duration::from_secs(1)), Ok(1));
        t.join().unwrap();
        assert_eq!(rx.recv_timeout(Duration::from_secs(1)), Ok(3));
        assert_eq!(rx.recv_timeout(Duration::ZERO), Err(RecvError::Closed));
    }

    #[test]
    fn receive_times_out_and_a_gone_receiver_fails_sends_also_blocked_ones() {
        let (tx, rx) = bounded::<u32>(1);
        let t0 = Instant::now();
        assert_eq!(
            rx.recv_timeout(Duration::from_millis(30)),
            Err(RecvError::Timeout)
        );
        assert!(t0.elapsed() >= Duration::from_millis(30));
        assert_eq!(rx.recv_timeout(Duration::ZERO), Err(RecvError::Timeout));
        tx.send(1).unwrap();
        let t = std::thread::spawn(move || tx.send(2));
        std::thread::sleep(Duration::from_millis(30));
        drop(rx);
        assert_eq!(t.join().unwrap(), Err(SendError::Closed(2)));
    }
}
