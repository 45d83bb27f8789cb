//! The parser workers' seccomp filter: a parser exploited by a hostile document can neither
//! open a network connection (nor any socket) nor start another program.
//!
//! Everything else stays allowed: the filter is a deny list aimed at what a compromised parser
//! would need to reach out, on top of the resource limits `parsers.rs` sets. A refused call
//! fails with `EPERM` rather than killing the process, so a library that merely probes (a
//! socket to ask a name service, say) degrades instead of crashing.

use std::collections::BTreeMap;

use seccompiler::{BpfProgram, SeccompAction, SeccompFilter, SeccompRule};

/// Installs the filter on every thread of this process (threads to come inherit it). Also
/// sets `no_new_privs`.
pub fn confine() -> Result<(), String> {
    let denied = [libc::SYS_socket, libc::SYS_socketpair, libc::SYS_execve, libc::SYS_execveat];
    let rules: BTreeMap<i64, Vec<SeccompRule>> = denied.into_iter().map(|call| (call, Vec::new())).collect();
    let arch = std::env::consts::ARCH.try_into().map_err(|err| format!("{err:?}"))?;
    let filter = SeccompFilter::new(rules, SeccompAction::Allow, SeccompAction::Errno(libc::EPERM as u32), arch)
        .map_err(|err| err.to_string())?;
    let program: BpfProgram = filter.try_into().map_err(|err: seccompiler::BackendError| err.to_string())?;
    seccompiler::apply_filter_all_threads(&program).map_err(|err| err.to_string())
}

#[cfg(test)]
mod tests {
    /// Set in the child process that installs the filter and probes it.
    const CHILD: &str = "SLUICE_SANDBOX_CHILD";

    /// The filter applies to the whole process, so it is tried in a child: this test binary
    /// run again for this one test.
    #[test]
    fn a_confined_process_opens_no_socket_and_runs_no_program() {
        if std::env::var_os(CHILD).is_some() {
            super::confine().expect("the filter installs");
            let socket = std::net::TcpListener::bind("127.0.0.1:0");
            assert_eq!(socket.err().and_then(|err| err.raw_os_error()), Some(libc::EPERM));
            let program = std::process::Command::new("/bin/true").status();
            assert!(program.is_err(), "a confined process ran a program");
            // Ordinary work goes on.
            let status = std::fs::read_to_string("/proc/thread-self/status").unwrap();
            assert!(status.lines().any(|line| line == "Seccomp:\t2"), "{status}");
            return;
        }
        let status = std::process::Command::new(std::env::current_exe().unwrap())
            .args([
                "--exact",
                "sandbox::tests::a_confined_process_opens_no_socket_and_runs_no_program",
                "--test-threads=1",
            ])
            .env(CHILD, "1")
            .status()
            .unwrap();
        assert!(status.success(), "the confined child failed its checks");
    }
}
