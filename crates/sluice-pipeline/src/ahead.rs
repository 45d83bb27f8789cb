//! Preparation running ahead of the embed stage, in task order, within a memory budget.
//!
//! Threads prepare files (open, hash, parse in a worker) and hand them over in the order of the
//! run's tasks, so that the first of several identical documents is always the one indexed.
//! Every prepared document holds a share of a byte [`Budget`] (its chunks and room for their
//! vectors) from before its text is read until it is written; a document waits while the
//! budget is spent, except the oldest one not yet written, which always goes through. That
//! keeps the run moving (the embed stage only ever waits for the oldest document) and bounds
//! what the daemon holds to the budget plus that one document.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Condvar, Mutex};
use std::time::Duration;

/// Bytes of prepared documents in the daemon's hands.
pub(crate) struct Budget {
    limit: u64,
    /// Whether `acquire` may wait (threads ahead of the embed stage) or never does (documents
    /// prepared one by one on the embedding thread itself, which would wait for itself).
    waits: bool,
    state: Mutex<BudgetState>,
    changed: Condvar,
}

struct BudgetState {
    used: u64,
    /// The oldest task whose document is not yet released.
    oldest: usize,
    closed: bool,
}

impl Budget {
    pub(crate) fn new(limit: u64, waits: bool) -> Self {
        Self {
            limit,
            waits,
            state: Mutex::new(BudgetState { used: 0, oldest: 0, closed: false }),
            changed: Condvar::new(),
        }
    }

    pub(crate) fn limit(&self) -> u64 {
        self.limit
    }

    /// Takes `bytes` for the document of task `index`, waiting while that would overdraw the
    /// budget (unless it is the oldest unreleased one). `false` when the run ended meanwhile.
    pub(crate) fn acquire(&self, index: usize, bytes: u64) -> bool {
        let mut state = self.state.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        loop {
            if state.closed {
                return false;
            }
            if !self.waits || index <= state.oldest || state.used + bytes <= self.limit {
                state.used += bytes;
                return true;
            }
            state = self
                .changed
                .wait_timeout(state, Duration::from_millis(100))
                .unwrap_or_else(|poisoned| poisoned.into_inner())
                .0;
        }
    }

    /// Gives back `bytes`; every task before `oldest` is now written.
    pub(crate) fn release(&self, bytes: u64, oldest: usize) {
        let mut state = self.state.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        state.used = state.used.saturating_sub(bytes);
        state.oldest = state.oldest.max(oldest);
        self.changed.notify_all();
    }

    /// Whether the budget is spent (the one-by-one mode ends its batch there).
    pub(crate) fn spent(&self) -> bool {
        let state = self.state.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        state.used >= self.limit
    }

    /// The run is over: waiting documents give up.
    pub(crate) fn close(&self) {
        self.state.lock().unwrap_or_else(|poisoned| poisoned.into_inner()).closed = true;
        self.changed.notify_all();
    }
}

/// A prepared item and the budget bytes it holds.
pub(crate) trait Charged {
    fn charge(&self) -> u64;
}

/// Prepares tasks `0..tasks` with `prepare` (on `threads` threads, or one by one on this thread
/// when `threads` is 0) and hands them to `consume` in task order, in batches of consecutive
/// ready ones of at most `batch` items, releasing their budget after each batch. Stops early
/// when `consume` returns `Ok(false)` or `stop()` says so. Returns how many tasks were consumed.
pub(crate) fn prepare_in_order<T: Charged + Send, E>(
    tasks: usize,
    threads: usize,
    batch: usize,
    budget: &Budget,
    stop: &(dyn Fn() -> bool + Sync),
    prepare: &(dyn Fn(usize) -> T + Sync),
    consume: &mut dyn FnMut(std::ops::Range<usize>, Vec<T>) -> Result<bool, E>,
) -> Result<usize, E> {
    if threads == 0 {
        return one_by_one(tasks, batch, budget, stop, prepare, consume);
    }
    let next_task = AtomicUsize::new(0);
    let done: Mutex<BTreeMap<usize, T>> = Mutex::new(BTreeMap::new());
    let ready = Condvar::new();
    std::thread::scope(|scope| {
        for index in 0..threads {
            let (next_task, done, ready) = (&next_task, &done, &ready);
            std::thread::Builder::new()
                .name(format!("sluice-prepare-{index}"))
                .spawn_scoped(scope, move || {
                    loop {
                        let task = next_task.fetch_add(1, Ordering::SeqCst);
                        if task >= tasks || stop() {
                            break;
                        }
                        let prepared = prepare(task);
                        done.lock().unwrap_or_else(|poisoned| poisoned.into_inner()).insert(task, prepared);
                        ready.notify_all();
                    }
                })
                .expect("a preparation thread starts");
        }
        let result = consume_in_order(tasks, batch, budget, stop, &done, &ready, consume);
        // Whatever happened, the threads must finish: no more tasks, and no more waiting.
        next_task.store(tasks, Ordering::SeqCst);
        budget.close();
        result
    })
}

fn consume_in_order<T: Charged, E>(
    tasks: usize,
    batch: usize,
    budget: &Budget,
    stop: &(dyn Fn() -> bool + Sync),
    done: &Mutex<BTreeMap<usize, T>>,
    ready: &Condvar,
    consume: &mut dyn FnMut(std::ops::Range<usize>, Vec<T>) -> Result<bool, E>,
) -> Result<usize, E> {
    let mut next = 0;
    while next < tasks {
        let mut items = Vec::new();
        {
            let mut done = done.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
            while !done.contains_key(&next) {
                if stop() {
                    return Ok(next);
                }
                done = ready.wait_timeout(done, Duration::from_millis(100)).unwrap_or_else(|p| p.into_inner()).0;
            }
            while items.len() < batch
                && let Some(item) = done.remove(&(next + items.len()))
            {
                items.push(item);
            }
        }
        if stop() {
            return Ok(next);
        }
        let go_on;
        (next, go_on) = hand_over(next, items, budget, consume)?;
        if !go_on {
            break;
        }
    }
    Ok(next)
}

/// Gives `items` (tasks `next..`) to `consume`, then releases their budget; returns the next
/// task and whether to go on.
fn hand_over<T: Charged, E>(
    next: usize,
    items: Vec<T>,
    budget: &Budget,
    consume: &mut dyn FnMut(std::ops::Range<usize>, Vec<T>) -> Result<bool, E>,
) -> Result<(usize, bool), E> {
    let range = next..next + items.len();
    let charge: u64 = items.iter().map(Charged::charge).sum();
    let go_on = consume(range.clone(), items)?;
    budget.release(charge, range.end);
    Ok((range.end, go_on))
}

fn one_by_one<T: Charged, E>(
    tasks: usize,
    batch: usize,
    budget: &Budget,
    stop: &(dyn Fn() -> bool + Sync),
    prepare: &(dyn Fn(usize) -> T + Sync),
    consume: &mut dyn FnMut(std::ops::Range<usize>, Vec<T>) -> Result<bool, E>,
) -> Result<usize, E> {
    let mut next = 0;
    while next < tasks {
        if stop() {
            return Ok(next);
        }
        let mut items = Vec::new();
        while next + items.len() < tasks && items.len() < batch && (items.is_empty() || !budget.spent()) {
            items.push(prepare(next + items.len()));
        }
        let go_on;
        (next, go_on) = hand_over(next, items, budget, consume)?;
        if !go_on {
            break;
        }
    }
    Ok(next)
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Item(usize, u64);

    impl Charged for Item {
        fn charge(&self) -> u64 {
            self.1
        }
    }

    #[test]
    fn items_come_in_order_and_the_budget_bounds_what_is_held() {
        let budget = Budget::new(100, true);
        let held = std::sync::atomic::AtomicU64::new(0);
        let peak = std::sync::atomic::AtomicU64::new(0);
        // Item 7 alone is over the budget: it must still go through when it is the oldest.
        let size = |index: usize| if index == 7 { 250 } else { 30 + (index as u64 % 3) * 10 };
        let prepare = |index: usize| {
            assert!(budget.acquire(index, size(index)));
            let now = held.fetch_add(size(index), Ordering::SeqCst) + size(index);
            peak.fetch_max(now, Ordering::SeqCst);
            Item(index, size(index))
        };
        let mut seen = Vec::new();
        let mut consume = |range: std::ops::Range<usize>, items: Vec<Item>| -> Result<bool, ()> {
            assert_eq!(items.iter().map(|item| item.0).collect::<Vec<_>>(), range.collect::<Vec<_>>());
            for item in &items {
                held.fetch_sub(item.1, Ordering::SeqCst);
            }
            seen.extend(items.into_iter().map(|item| item.0));
            Ok(true)
        };
        let consumed = prepare_in_order(40, 4, 5, &budget, &|| false, &prepare, &mut consume).unwrap();
        assert_eq!(consumed, 40);
        assert_eq!(seen, (0..40).collect::<Vec<_>>());
        // The budget plus the one document let through over it.
        assert!(peak.load(Ordering::SeqCst) <= 100 + 250, "{}", peak.load(Ordering::SeqCst));
    }

    #[test]
    fn a_stop_ends_the_run_after_a_batch() {
        let budget = Budget::new(1 << 20, false);
        let stopped = std::sync::atomic::AtomicBool::new(false);
        let stop = || stopped.load(Ordering::SeqCst);
        let mut consume = |_: std::ops::Range<usize>, _: Vec<Item>| -> Result<bool, ()> {
            stopped.store(true, Ordering::SeqCst);
            Ok(true)
        };
        let consumed = prepare_in_order(10, 0, 3, &budget, &stop, &|i| Item(i, 1), &mut consume).unwrap();
        assert_eq!(consumed, 3);
    }
}
