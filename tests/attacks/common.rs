//! What the attacks share: failpoints, root checks, a small tmpfs, waiting for the daemon.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde_json::Value;

use crate::support::{Daemon, Workspace, wait_for};

/// Whether this process may mount file systems, create device nodes and chown files.
pub fn is_root(test: &str) -> bool {
    let root = uzers::get_current_uid() == 0;
    if !root {
        eprintln!("SKIPPED {test}: needs root (CI runs as root)");
    }
    root
}

/// The daemon's failpoints (`SLUICE_FAILPOINTS`): arm one for a file, wait until the daemon
/// stops there, do the deed, let it go on.
pub struct Failpoints {
    pub dir: PathBuf,
}

impl Failpoints {
    pub fn new(workspace: &Workspace) -> Self {
        let dir = workspace.folder("failpoints");
        Self { dir }
    }

    pub fn env(&self) -> (&'static str, String) {
        ("SLUICE_FAILPOINTS", self.dir.display().to_string())
    }

    pub fn arm(&self, name: &str, subject: &str) {
        std::fs::write(self.dir.join(name), subject).unwrap();
    }

    /// Waits (up to two minutes) until the daemon is held at `name`.
    pub fn wait_reached(&self, name: &str, daemon: &Daemon) {
        let reached = self.dir.join(format!("{name}.reached"));
        wait_for(Duration::from_secs(120), || reached.exists().then_some(()))
            .unwrap_or_else(|| panic!("the daemon never reached failpoint {name}:\n{}", daemon.stderr()));
        std::fs::remove_file(reached).unwrap();
    }

    pub fn release(&self, name: &str) {
        std::fs::write(self.dir.join(format!("{name}.go")), "").unwrap();
    }
}

/// The quarantine entry whose path ends with `/name`, as the daemon lists it.
pub fn quarantined(daemon: &Daemon, name: &str) -> Option<Value> {
    let listing = daemon.get_json("/v1/quarantine");
    listing["quarantined"]
        .as_array()?
        .iter()
        .find(|entry| entry["path"].as_str().unwrap().ends_with(&format!("/{name}")))
        .cloned()
}

/// Panics with the daemon's log if it has exited.
pub fn assert_running(daemon: &mut Daemon) {
    if daemon.exited() {
        panic!("the daemon exited:\n{}", daemon.stderr());
    }
}

/// Waits until the daemon lists `name` in quarantine; returns its reason.
pub fn wait_quarantined(daemon: &mut Daemon, name: &str, limit: Duration) -> String {
    wait_for(limit, || {
        assert_running(daemon);
        quarantined(daemon, name)
    })
    .unwrap_or_else(|| panic!("{name} never reached quarantine:\n{}", daemon.stderr()))["reason"]
        .as_str()
        .unwrap()
        .to_owned()
}

/// Waits until a search for `phrase` finds a hit whose path ends with `/name`.
pub fn wait_found(daemon: &Daemon, phrase: &str, name: &str, limit: Duration) {
    let suffix = format!("/{name}");
    wait_for(limit, || {
        let paths = crate::support::hit_paths(&daemon.search(phrase, "&k=20&mode=lexical"));
        paths.iter().any(|path| path.ends_with(&suffix)).then_some(())
    })
    .unwrap_or_else(|| panic!("{name} was never found by {phrase:?}:\n{}", daemon.stderr()));
}

/// Waits until the daemon's `live` version is at least `version`.
pub fn wait_live(daemon: &Daemon, version: i64, limit: Duration) {
    wait_for(limit, || daemon.live_version().filter(|live| *live >= version))
        .unwrap_or_else(|| panic!("live never reached version {version}:\n{}", daemon.stderr()));
}

/// Every chunk text of the live version, as the admin export gives it.
pub fn exported_text(daemon: &Daemon) -> String {
    let (status, body) = daemon.get("/v1/export?format=jsonl");
    assert_eq!(status, 200, "{body}");
    body
}

/// A small tmpfs, unmounted when dropped.
pub struct Tmpfs {
    pub path: PathBuf,
}

impl Tmpfs {
    /// `None` (after saying so) where this machine lets no one mount (a container without the
    /// capability): the test that needs it skips.
    pub fn mount(path: &Path, size: &str, test: &str) -> Option<Self> {
        std::fs::create_dir_all(path).unwrap();
        let output = std::process::Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size},mode=0700"), "tmpfs"])
            .arg(path)
            .output()
            .expect("mount runs");
        if !output.status.success() {
            eprintln!("SKIPPED {test}: cannot mount a tmpfs here: {}", String::from_utf8_lossy(&output.stderr).trim());
            return None;
        }
        Some(Self { path: path.to_owned() })
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = std::process::Command::new("umount").arg("-l").arg(&self.path).status();
    }
}

/// A DOCX of a few hundred kilobytes whose body inflates to `text_bytes` of text: the same
/// paragraph over and over, which deflate squeezes about a thousand to one.
pub fn inflating_docx(path: &Path, text_bytes: usize) {
    let paragraph = format!("<w:p><w:r><w:t>{}</w:t></w:r></w:p>", "lorem ipsum dolor sit amet ".repeat(2400));
    let file = std::fs::File::create(path).unwrap();
    let mut zip = zip::ZipWriter::new(file);
    let options = zip::write::SimpleFileOptions::default()
        .compression_method(zip::CompressionMethod::Deflated)
        .compression_level(Some(9))
        .large_file(true);
    zip.start_file("[Content_Types].xml", options).unwrap();
    zip.write_all(
        br#"<?xml version="1.0" encoding="UTF-8"?><Types xmlns="http://schemas.openxmlformats.org/package/2006/content-types"><Default Extension="xml" ContentType="application/xml"/><Override PartName="/word/document.xml" ContentType="application/vnd.openxmlformats-officedocument.wordprocessingml.document.main+xml"/></Types>"#,
    )
    .unwrap();
    zip.start_file("word/document.xml", options).unwrap();
    zip.write_all(br#"<?xml version="1.0" encoding="UTF-8"?><w:document xmlns:w="http://schemas.openxmlformats.org/wordprocessingml/2006/main"><w:body>"#)
        .unwrap();
    let block = paragraph.repeat(16);
    for _ in 0..text_bytes.div_ceil(block.len()) {
        zip.write_all(block.as_bytes()).unwrap();
    }
    zip.write_all(b"</w:body></w:document>").unwrap();
    zip.finish().unwrap();
}
