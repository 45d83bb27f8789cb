//! Fingerprints of stage settings: what a stage did, as one comparable value.

use std::fmt;

/// blake3 over a stage's name, its code version and its effective settings (canonical text).
/// Two runs with equal fingerprints produce equal output from equal input.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct Fingerprint([u8; 32]);

impl Fingerprint {
    pub fn of(stage: &str, settings: &str) -> Self {
        let mut hasher = blake3::Hasher::new_derive_key("sluice fingerprint v1");
        hasher.update(stage.as_bytes());
        hasher.update(&[0]);
        hasher.update(settings.as_bytes());
        Self(*hasher.finalize().as_bytes())
    }

    /// Combines several fingerprints in order (e.g. every stage of a pipeline).
    pub fn combine(parts: &[Fingerprint]) -> Self {
        let mut hasher = blake3::Hasher::new_derive_key("sluice fingerprint combine v1");
        for part in parts {
            hasher.update(&part.0);
        }
        Self(*hasher.finalize().as_bytes())
    }

    pub fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }

    pub fn to_hex(&self) -> String {
        hex::encode(self.0)
    }

    pub fn parse(text: &str) -> Option<Self> {
        let mut bytes = [0u8; 32];
        hex::decode_to_slice(text, &mut bytes).ok()?;
        Some(Self(bytes))
    }
}

impl fmt::Display for Fingerprint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_hex())
    }
}

impl fmt::Debug for Fingerprint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Fingerprint({})", &self.to_hex()[..12])
    }
}
