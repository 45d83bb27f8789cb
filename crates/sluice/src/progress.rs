//! A progress bar for `sluice ingest`: documents, documents per second, ETA. Drawn only when
//! standard error is a terminal.

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use sluice_pipeline::{Observer, Outcome};

pub struct Progress {
    bar: ProgressBar,
}

impl Progress {
    pub fn new() -> Self {
        let bar = ProgressBar::with_draw_target(Some(0), ProgressDrawTarget::stderr());
        bar.set_style(
            ProgressStyle::with_template(
                "{spinner} [{elapsed_precise}] {wide_bar} {pos}/{len} documents · {per_sec} · ETA {eta}",
            )
            .expect("valid template"),
        );
        Self { bar }
    }

    pub fn finish(&self) {
        self.bar.finish_and_clear();
    }
}

impl Observer for Progress {
    // One `ingest` may be several runs (the batches a node claims on a shared catalog).
    fn started(&self, documents: usize) {
        self.bar.inc_length(documents as u64);
    }

    fn document(&self, outcome: Outcome<'_>) {
        if outcome != Outcome::Deleted {
            self.bar.inc(1);
        }
    }
}
