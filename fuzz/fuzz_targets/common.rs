//! Shared by every target: extraction with embedded files, under limits small enough that the
//! fuzzer's own memory cap (`-rss_limit_mb=2048`) only trips on a real bug.

pub fn extract(bytes: &[u8], file_name: &str) {
    let limits = sluice_extract::Limits {
        max_pages: 500,
        max_decompressed_bytes: 64 << 20,
        max_children: 200,
        ..sluice_extract::Limits::default()
    };
    // An error is a fine answer for junk input; only a panic, a hang or runaway memory is a finding.
    let _ = sluice_extract::extract_file(bytes, file_name, &limits);
}
