//! Named pause points for the attack tests (cargo feature `failpoints`; without it, every
//! point compiles to nothing).
//!
//! With `SLUICE_FAILPOINTS=DIR` in the daemon's environment, a point is armed by a file
//! `DIR/NAME` holding the subject it waits for (a file's relative path). When the daemon
//! reaches that point for that subject it writes `DIR/NAME.reached` and waits, at most a
//! minute, for `DIR/NAME.go`; then the point is disarmed. A test drives a race this way (swap a
//! file between the scan and the read, kill the daemon in the middle of a document) instead of
//! hoping for one.

#[cfg(feature = "failpoints")]
pub fn pause(name: &str, subject: &str) {
    use std::time::{Duration, Instant};
    let Some(dir) = std::env::var_os("SLUICE_FAILPOINTS").map(std::path::PathBuf::from) else { return };
    let armed = dir.join(name);
    match std::fs::read_to_string(&armed) {
        Ok(wanted) if wanted.trim() == subject => {}
        _ => return,
    }
    let _ = std::fs::remove_file(&armed);
    let _ = std::fs::write(dir.join(format!("{name}.reached")), subject);
    tracing::warn!(failpoint = name, subject, "paused at a failpoint");
    let go = dir.join(format!("{name}.go"));
    let deadline = Instant::now() + Duration::from_secs(60);
    while !go.exists() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(10));
    }
    let _ = std::fs::remove_file(go);
}

#[cfg(not(feature = "failpoints"))]
#[inline(always)]
pub fn pause(_name: &str, _subject: &str) {}
