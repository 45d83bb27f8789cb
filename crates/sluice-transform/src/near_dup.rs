//! Near-duplicate detection: a MinHash signature of each document's words, banded for
//! locality-sensitive hashing (LSH), so that the documents sharing a band with a new one are the
//! only ones compared with it.
//!
//! A document's shingles are its runs of [`SHINGLE_TOKENS`] consecutive tokens (words in lower
//! case; each Han, kana or Hangul character a token, those scripts having no spaces). The
//! signature keeps, for each of [`PERMUTATIONS`] hash functions, the least hash of any shingle;
//! two signatures agree at a position with probability equal to the Jaccard similarity of the two
//! shingle sets, so the share of agreeing positions estimates it. [`BANDS`] bands of [`ROWS`]
//! positions each are hashed: documents of similarity s share a band with probability
//! 1 - (1 - s^ROWS)^BANDS (0.9996 at s = 0.8, 0.04 at s = 0.3), and candidates are then judged
//! on their whole signatures.
//!
//! Hashes are FNV-1a and splitmix64, written out here: signatures are stored in the catalog, so
//! they must not change with a library's or a compiler's version.

/// Tokens per shingle.
pub const SHINGLE_TOKENS: usize = 5;
/// Hash functions, hence positions of a signature.
pub const PERMUTATIONS: usize = 128;
/// Bands and positions per band (`BANDS * ROWS == PERMUTATIONS`).
pub const BANDS: usize = 32;
pub const ROWS: usize = 4;
/// Characters of a document's text a signature is made from: a share's huge file costs a
/// bounded amount, and its first megabyte tells its near-duplicates apart well enough.
pub const MAX_CHARS: usize = 1 << 20;
/// Changes whenever a signature of the same text would; part of the chunk fingerprint's enrich
/// version, so stored signatures are made again.
pub const VERSION: &str = "minhash-1 (5-token shingles, 128 x splitmix64, 32 x 4 bands)";

/// A document's MinHash signature.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Signature(pub Vec<u32>);

impl Signature {
    /// The signature of `text`, or `None` when it has fewer tokens than one shingle.
    pub fn of(text: &str) -> Option<Self> {
        let text = match text.char_indices().nth(MAX_CHARS) {
            Some((end, _)) => &text[..end],
            None => text,
        };
        let tokens = tokens(text);
        if tokens.len() < SHINGLE_TOKENS {
            return None;
        }
        let mut mins = vec![u32::MAX; PERMUTATIONS];
        for shingle in tokens.windows(SHINGLE_TOKENS) {
            let mut hash = FNV_OFFSET;
            for token in shingle {
                hash = fnv1a(hash, token.as_bytes());
                hash = fnv1a(hash, &[0xff]);
            }
            for (position, min) in mins.iter_mut().enumerate() {
                let permuted = (splitmix64(hash ^ SEEDS[position]) >> 32) as u32;
                *min = (*min).min(permuted);
            }
        }
        Some(Signature(mins))
    }

    /// The estimated Jaccard similarity of the two documents' shingles: the share of positions
    /// where the signatures agree.
    pub fn similarity(&self, other: &Signature) -> f64 {
        let agree = self.0.iter().zip(&other.0).filter(|(a, b)| a == b).count();
        agree as f64 / PERMUTATIONS as f64
    }

    /// One key per band: documents that share a key are candidates. The band's number is in
    /// the key, so equal rows in different bands do not meet.
    pub fn band_keys(&self) -> Vec<i64> {
        self.0
            .chunks(ROWS)
            .enumerate()
            .map(|(band, rows)| {
                let mut hash = fnv1a(FNV_OFFSET, &(band as u32).to_le_bytes());
                for row in rows {
                    hash = fnv1a(hash, &row.to_le_bytes());
                }
                hash as i64
            })
            .collect()
    }

    /// Little-endian bytes, as the catalog stores it.
    pub fn to_bytes(&self) -> Vec<u8> {
        self.0.iter().flat_map(|value| value.to_le_bytes()).collect()
    }

    pub fn from_bytes(bytes: &[u8]) -> Option<Self> {
        (bytes.len() == PERMUTATIONS * 4).then(|| {
            Signature(bytes.chunks_exact(4).map(|four| u32::from_le_bytes(four.try_into().expect("4 bytes"))).collect())
        })
    }
}

/// Words in lower case, and each Han, kana or Hangul character on its own.
fn tokens(text: &str) -> Vec<String> {
    let mut tokens = Vec::new();
    let mut word = String::new();
    for c in text.chars() {
        if is_cjk(c) {
            if !word.is_empty() {
                tokens.push(std::mem::take(&mut word));
            }
            tokens.push(c.to_string());
        } else if c.is_alphanumeric() {
            word.extend(c.to_lowercase());
        } else if !word.is_empty() {
            tokens.push(std::mem::take(&mut word));
        }
    }
    if !word.is_empty() {
        tokens.push(word);
    }
    tokens
}

fn is_cjk(c: char) -> bool {
    matches!(c,
        '\u{3040}'..='\u{30FF}' | '\u{3400}'..='\u{4DBF}' | '\u{4E00}'..='\u{9FFF}' | '\u{F900}'..='\u{FAFF}'
        | '\u{AC00}'..='\u{D7AF}' | '\u{20000}'..='\u{2FFFF}')
}

const FNV_OFFSET: u64 = 0xcbf2_9ce4_8422_2325;

fn fnv1a(mut hash: u64, bytes: &[u8]) -> u64 {
    for byte in bytes {
        hash ^= u64::from(*byte);
        hash = hash.wrapping_mul(0x0000_0100_0000_01b3);
    }
    hash
}

fn splitmix64(mut x: u64) -> u64 {
    x = x.wrapping_add(0x9e37_79b9_7f4a_7c15);
    x = (x ^ (x >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    x ^ (x >> 31)
}

/// One seed per hash function, fixed: the first outputs of splitmix64 from 0.
const SEEDS: [u64; PERMUTATIONS] = {
    let mut seeds = [0u64; PERMUTATIONS];
    let mut state = 0u64;
    let mut i = 0;
    while i < PERMUTATIONS {
        state = state.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = state;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        seeds[i] = z ^ (z >> 31);
        i += 1;
    }
    seeds
};

#[cfg(test)]
mod tests {
    use super::*;

    const TEXT: &str = "The harbour authority approved the dredging budget for the northern channel after a long \
        survey of the silt that had built up along the quay during the winter storms, and asked the contractor \
        to start before the spring tides so that the ferries could keep their timetable through the summer.";

    #[test]
    fn the_same_text_signs_the_same_and_a_small_edit_stays_close() {
        let signature = Signature::of(TEXT).unwrap();
        assert_eq!(Signature::of(TEXT).unwrap(), signature);
        assert_eq!(Signature::from_bytes(&signature.to_bytes()).unwrap(), signature);
        assert_eq!(signature.band_keys().len(), BANDS);
        // Case and punctuation are not the text.
        assert_eq!(Signature::of(&TEXT.to_uppercase().replace(',', " ;")).unwrap(), signature);

        let edited = TEXT.replace("northern", "southern");
        let similarity = signature.similarity(&Signature::of(&edited).unwrap());
        assert!((0.7..1.0).contains(&similarity), "one word of 55 changed: {similarity}");
        let other = "Quarterly revenue rose by four percent as subscriptions grew in every region except the north.";
        assert!(signature.similarity(&Signature::of(other).unwrap()) < 0.1);
    }

    #[test]
    fn too_short_a_text_has_no_signature() {
        assert_eq!(Signature::of("four words only here"), None);
        assert!(Signature::of("五個漢字").is_none());
        assert!(Signature::of("五個漢字五個").is_some());
    }

    /// Pinned values: a stored signature must mean the same after any upgrade.
    #[test]
    fn signatures_are_stable() {
        let signature = Signature::of(TEXT).unwrap();
        assert_eq!(signature.0[..4], PINNED);
    }

    const PINNED: [u32; 4] = [146_177_193, 120_784_927, 36_356_629, 297_903_233];

    /// A small deterministic generator.
    struct Rng(u64);

    impl Rng {
        fn below(&mut self, n: usize) -> usize {
            self.0 = splitmix64(self.0);
            (self.0 % n as u64) as usize
        }
    }

    fn shingles(words: &[String]) -> std::collections::HashSet<String> {
        words.windows(SHINGLE_TOKENS).map(|window| window.join(" ")).collect()
    }

    /// The detector on generated documents with known edits: 40 documents of 300 words from a
    /// 5,000-word vocabulary, each edited by replacing 0 to 40% of its words. A pair is a true
    /// near-duplicate when the exact Jaccard similarity of its shingle sets is at least the
    /// threshold; the detector says so when the two share an LSH band and their signatures'
    /// estimate reaches it. Every edited copy is paired with its original and with the other
    /// originals. Prints precision and recall (for the note), and holds them.
    #[test]
    fn precision_and_recall_on_documents_with_known_edits() {
        let threshold = 0.8;
        let mut rng = Rng(18);
        let vocabulary: Vec<String> = (0..5000).map(|i| format!("w{i}")).collect();
        let word = |rng: &mut Rng| vocabulary[rng.below(vocabulary.len())].clone();
        let originals: Vec<Vec<String>> = (0..40).map(|_| (0..300).map(|_| word(&mut rng)).collect()).collect();
        let signatures: Vec<Signature> =
            originals.iter().map(|words| Signature::of(&words.join(" ")).unwrap()).collect();
        let (mut true_positive, mut false_positive, mut false_negative, mut pairs) = (0, 0, 0, 0);
        for original in &originals {
            for edited_share in [0.0, 0.005, 0.01, 0.015, 0.02, 0.03, 0.05, 0.1, 0.2, 0.4] {
                let mut copy = original.clone();
                for _ in 0..(edited_share * 300.0) as usize {
                    let at = rng.below(copy.len());
                    copy[at] = word(&mut rng);
                }
                let signature = Signature::of(&copy.join(" ")).unwrap();
                let keys = signature.band_keys();
                for (other, other_signature) in signatures.iter().enumerate() {
                    let jaccard = {
                        let (a, b) = (shingles(&copy), shingles(&originals[other]));
                        a.intersection(&b).count() as f64 / a.union(&b).count() as f64
                    };
                    let shares_band = other_signature.band_keys().iter().zip(&keys).any(|(a, b)| a == b);
                    let found = shares_band && signature.similarity(other_signature) >= threshold;
                    let truth = jaccard >= threshold;
                    match (found, truth) {
                        (true, true) => true_positive += 1,
                        (true, false) => false_positive += 1,
                        (false, true) => false_negative += 1,
                        (false, false) => {}
                    }
                    pairs += 1;
                }
            }
        }
        let precision = true_positive as f64 / (true_positive + false_positive).max(1) as f64;
        let recall = true_positive as f64 / (true_positive + false_negative).max(1) as f64;
        eprintln!(
            "near-duplicates at Jaccard {threshold}: {pairs} pairs, {} true; precision {precision:.3}, recall {recall:.3}",
            true_positive + false_negative
        );
        assert!(true_positive + false_negative >= 100, "too few true pairs to measure");
        assert!(precision >= 0.9 && recall >= 0.9, "precision {precision:.3}, recall {recall:.3}");
    }
}
