//! File names as text, without collisions.
//!
//! A document's identity is its path relative to its source, as text. Linux names are bytes,
//! and a lossy conversion would give two different names (`r\xe9sum\xe9.txt` in Latin-1 and
//! `r\xe8sum\xe8.txt`) the same text, so one file could replace the other in the index. A
//! name that is valid UTF-8 and holds no `%XX` sequence is kept as it is (nearly every name);
//! any other name is percent-encoded: each byte that is not part of valid UTF-8, and each `%`,
//! becomes `%XX`. Every encoded name holds a `%XX` sequence and no kept name does, so the
//! mapping is injective; [`decode`] turns the text back into the exact bytes.

use std::ffi::{OsStr, OsString};
use std::os::unix::ffi::{OsStrExt, OsStringExt};

/// The text form of one path component.
pub fn encode(name: &OsStr) -> String {
    let bytes = name.as_bytes();
    match std::str::from_utf8(bytes) {
        Ok(text) if !has_escape(text.as_bytes()) => text.to_owned(),
        _ => percent_encode(bytes),
    }
}

/// The bytes of a component [`encode`] produced.
pub fn decode(text: &str) -> OsString {
    if !has_escape(text.as_bytes()) {
        return OsString::from(text);
    }
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut index = 0;
    while index < bytes.len() {
        match (bytes[index], bytes.get(index + 1..index + 3).and_then(hex_byte)) {
            (b'%', Some(byte)) => {
                out.push(byte);
                index += 3;
            }
            (byte, _) => {
                out.push(byte);
                index += 1;
            }
        }
    }
    OsString::from_vec(out)
}

/// A relative path (`/`-separated components) in text form, back to the file system's bytes.
pub fn decode_path(rel_path: &str) -> std::path::PathBuf {
    rel_path.split('/').map(decode).collect()
}

/// Whether the bytes hold `%` followed by two hex digits (either case).
fn has_escape(bytes: &[u8]) -> bool {
    bytes.windows(3).any(|w| w[0] == b'%' && hex_byte(&w[1..]).is_some())
}

fn hex_byte(pair: &[u8]) -> Option<u8> {
    let digit = |b: u8| (b as char).to_digit(16);
    match pair {
        [high, low] => Some((digit(*high)? * 16 + digit(*low)?) as u8),
        _ => None,
    }
}

/// Valid UTF-8 runs kept, `%` and every byte outside valid UTF-8 written as `%XX`.
fn percent_encode(bytes: &[u8]) -> String {
    let mut out = String::with_capacity(bytes.len() + 8);
    for chunk in bytes.utf8_chunks() {
        for c in chunk.valid().chars() {
            if c == '%' {
                out.push_str("%25");
            } else {
                out.push(c);
            }
        }
        for byte in chunk.invalid() {
            out.push_str(&format!("%{byte:02X}"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn os(bytes: &[u8]) -> &OsStr {
        OsStr::from_bytes(bytes)
    }

    #[test]
    fn plain_names_are_kept_and_others_round_trip() {
        assert_eq!(encode(os(b"report.pdf")), "report.pdf");
        assert_eq!(encode(os("résumé 100% done.txt".as_bytes())), "résumé 100% done.txt");
        for name in [&b"r\xe9sum\xe9.txt"[..], b"a%41", b"a%2541", b"%ZZ\xff", b"\xff\xfe", b"Report%20final.pdf"] {
            let text = encode(os(name));
            assert_eq!(decode(&text).as_bytes(), name, "{text}");
        }
        assert_eq!(encode(os(b"r\xe9sum\xe9.txt")), "r%E9sum%E9.txt");
    }

    #[test]
    fn different_names_never_share_a_text_form() {
        // The Latin-1 bytes, their lossy form, and a valid name that looks like the encoding.
        let names: [&[u8]; 6] = [
            b"r\xe9sum\xe9",
            "r\u{fffd}sum\u{fffd}".as_bytes(),
            b"r%E9sum%E9",
            b"r%25E9sum%25E9",
            b"r\xe8sum\xe8",
            b"r%e9sum%e9",
        ];
        let texts: std::collections::HashSet<String> = names.iter().map(|name| encode(os(name))).collect();
        assert_eq!(texts.len(), names.len(), "{texts:?}");
    }

    #[test]
    fn relative_paths_decode_component_by_component() {
        assert_eq!(decode_path("a%FF/b.txt").as_os_str().as_bytes(), b"a\xff/b.txt");
    }
}
