//! Measuring what a stage costs: wall time, and the CPU time of the threads doing the work.

use std::time::Instant;

use nix::sys::resource::{UsageWho, getrusage};
use nix::sys::time::TimeValLike;
use sluice_store::StageCost;

/// CPU seconds (user and system) this thread has used.
pub fn thread_cpu_seconds() -> f64 {
    getrusage(UsageWho::RUSAGE_THREAD).map_or(0.0, |usage| {
        (usage.user_time().num_microseconds() + usage.system_time().num_microseconds()) as f64 * 1e-6
    })
}

/// CPU seconds of this thread and of every thread of rayon's global pool, where the CPU
/// encoder's matrix products run.
fn pool_cpu_seconds() -> f64 {
    thread_cpu_seconds() + rayon::broadcast(|_| thread_cpu_seconds()).into_iter().sum::<f64>()
}

/// A stage being measured.
pub struct Meter {
    started: Instant,
    cpu_at_start: f64,
    cpu_now: fn() -> f64,
}

impl Meter {
    /// Work done on this thread alone.
    pub fn thread() -> Self {
        Self { started: Instant::now(), cpu_at_start: thread_cpu_seconds(), cpu_now: thread_cpu_seconds }
    }

    /// Work spread over rayon's global pool (the model's forward pass).
    pub fn pool() -> Self {
        Self { started: Instant::now(), cpu_at_start: pool_cpu_seconds(), cpu_now: pool_cpu_seconds }
    }

    /// What the stage cost so far (no GPU time: the caller knows whether a GPU ran it).
    pub fn stop(&self) -> StageCost {
        StageCost {
            wall: self.started.elapsed().as_secs_f64(),
            cpu: ((self.cpu_now)() - self.cpu_at_start).max(0.0),
            gpu: 0.0,
        }
    }
}
