//! Chunking by tokens of the embedding model's own tokenizer.
//!
//! Counting in the model's tokens (not characters or words) is what guarantees a chunk fits the
//! model's window, so nothing is silently truncated at embedding time.
//!
//! Chunks follow the document's structure. A window of at most `max_tokens` prefers to end
//! before a heading (a new section), else where any block ends (never right after a heading,
//! which belongs with what it introduces), else after a sentence (ended as any script ends one,
//! `SENTENCE_ENDS`: 。 as well as .), as long as that keeps it at least half full. A window that
//! ends at a block boundary is followed by one starting at the next block; only a block split
//! across windows is overlapped, by `overlap_tokens`, and never back into the block before it. Every chunk carries the heading path it sits under, each
//! heading cut to `MAX_HEADING_CHARS` (a hostile document's "heading" can be megabytes, and
//! every chunk under it repeats the path).
//!
//! A block is tokenized in segments of at most `SEGMENT_BYTES`, cut at whitespace, so a
//! one-line file of hundreds of megabytes never becomes one tokenizer input (the tokenizer
//! keeps about 100 bytes per input byte while it works). The model's pre-tokenizer splits at
//! whitespace anyway, so the tokens are the same.

use sluice_core::{BlockKind, Chunk, Fingerprint, NormalizedDocument, TextHash};
use tokenizers::Tokenizer;

use crate::clean::CLEAN_VERSION;

/// Version of the chunking algorithm; part of the fingerprint.
pub const CHUNKER_VERSION: &str = "4";
/// Characters of one heading kept in a chunk's heading path.
pub const MAX_HEADING_CHARS: usize = 200;
/// Headings kept in a path (the outermost ones).
pub const MAX_HEADING_DEPTH: usize = 8;
/// Bytes of a block given to the tokenizer at once.
const SEGMENT_BYTES: usize = 64 << 10;
/// Bytes of text a chunk may hold per token. Real text has 1 to 10; a window of tokens that
/// each stand for a hundred-character unknown word would make chunks (and every search hit
/// carrying one) tens of kilobytes, so windows are cut shorter there.
const MAX_BYTES_PER_TOKEN: usize = 40;
/// The longest span one token may cover. The model reads a word of over 100 characters as one
/// unknown token; a 300 KB run without a space would otherwise be one token, and one chunk.
/// Longer spans are cut into pieces this long, each counted as a token.
const MAX_TOKEN_BYTES: usize = 400;

#[derive(Debug, thiserror::Error)]
pub enum ChunkError {
    #[error("invalid tokenizer: {0}")]
    Tokenizer(String),
    #[error("tokenization failed: {0}")]
    Tokenize(String),
}

pub struct Chunker {
    tokenizer: Tokenizer,
    max_tokens: usize,
    overlap_tokens: usize,
    fingerprint: Fingerprint,
}

/// One token of the document: its byte range in the text and the block it belongs to.
#[derive(Clone, Copy)]
struct Token {
    start: usize,
    end: usize,
    block: usize,
    kind: BlockKind,
}

impl Chunker {
    /// `tokenizer_json` is the model's `tokenizer.json`; its truncation and padding are turned off
    /// here because chunking needs every token of the document.
    pub fn new(tokenizer_json: &[u8], max_tokens: usize, overlap_tokens: usize) -> Result<Self, ChunkError> {
        assert!(overlap_tokens < max_tokens, "validated by the pipeline plan");
        let mut tokenizer =
            Tokenizer::from_bytes(tokenizer_json).map_err(|err| ChunkError::Tokenizer(err.to_string()))?;
        tokenizer.with_truncation(None).map_err(|err| ChunkError::Tokenizer(err.to_string()))?;
        tokenizer.with_padding(None);
        let settings = format!(
            "chunker={CHUNKER_VERSION} clean={CLEAN_VERSION} max_tokens={max_tokens} overlap_tokens={overlap_tokens} tokenizer={}",
            blake3::hash(tokenizer_json).to_hex()
        );
        Ok(Self { tokenizer, max_tokens, overlap_tokens, fingerprint: Fingerprint::of("chunk", &settings) })
    }

    /// Fingerprint of everything that decides the chunks of a given document.
    pub fn fingerprint(&self) -> Fingerprint {
        self.fingerprint
    }

    pub fn chunk(&self, document: &NormalizedDocument) -> Result<Vec<Chunk>, ChunkError> {
        let tokens = self.tokenize(document)?;
        let headings = HeadingPaths::of(document);
        let text = &document.text;
        let mut chars = CharCounter::new(text);
        let mut chunks = Vec::new();
        let mut start = 0;
        while start < tokens.len() {
            let end = self.window_end(&tokens, text, start);
            let (byte_start, byte_end) = (tokens[start].start, tokens[end - 1].end);
            let chunk_text = &text[byte_start..byte_end];
            chunks.push(Chunk {
                ordinal: u32::try_from(chunks.len()).expect("fewer than 2^32 chunks"),
                text: chunk_text.to_owned(),
                text_hash: TextHash::of_text(chunk_text),
                char_start: chars.at(byte_start),
                char_end: chars.at(byte_end),
                page: document.blocks[tokens[start].block].page,
                token_count: u32::try_from(end - start).expect("window fits u32"),
                heading_path: headings.at(heading_anchor(&tokens[start..end])).to_vec(),
                pii: Vec::new(),
                language: None,
            });
            if end == tokens.len() {
                break;
            }
            start = if tokens[end].block != tokens[end - 1].block {
                end
            } else {
                let block_start = block_start(&tokens, end);
                end.saturating_sub(self.overlap_tokens).max(block_start).max(start + 1)
            };
        }
        Ok(chunks)
    }

    fn tokenize(&self, document: &NormalizedDocument) -> Result<Vec<Token>, ChunkError> {
        let mut tokens = Vec::new();
        for (index, block) in document.blocks.iter().enumerate() {
            let mut start = block.byte_start;
            while start < block.byte_end {
                let end = segment_end(&document.text, start, block.byte_end);
                let segment = &document.text[start..end];
                let encoding =
                    self.tokenizer.encode(segment, false).map_err(|err| ChunkError::Tokenize(err.to_string()))?;
                for &(s, e) in encoding.get_offsets().iter().filter(|(s, e)| e > s) {
                    let (mut piece, span_end) = (start + s, start + e);
                    while piece < span_end {
                        let mut piece_end = (piece + MAX_TOKEN_BYTES).min(span_end);
                        while !document.text.is_char_boundary(piece_end) {
                            piece_end += 1;
                        }
                        tokens.push(Token { start: piece, end: piece_end, block: index, kind: block.kind });
                        piece = piece_end;
                    }
                }
                start = end;
            }
        }
        Ok(tokens)
    }

    /// End (exclusive) of the window starting at `start`.
    fn window_end(&self, tokens: &[Token], text: &str, start: usize) -> usize {
        let by_tokens = (start + self.max_tokens).min(tokens.len());
        // No more than `MAX_BYTES_PER_TOKEN` bytes per token allowed (at least one token).
        let max_end_byte = tokens[start].start + self.max_tokens * MAX_BYTES_PER_TOKEN;
        let by_bytes = start + 1 + tokens[start + 1..by_tokens].partition_point(|token| token.end <= max_end_byte);
        let hard_end = by_tokens.min(by_bytes);
        if hard_end == tokens.len() {
            return hard_end;
        }
        let earliest = start + self.max_tokens / 2;
        let boundaries = || (earliest + 1..=hard_end).rev().filter(|&end| tokens[end].block != tokens[end - 1].block);
        let is_heading = |token: &Token| matches!(token.kind, BlockKind::Heading { .. });
        if let Some(end) = boundaries().find(|&end| is_heading(&tokens[end])) {
            return end;
        }
        if let Some(end) = boundaries().find(|&end| !is_heading(&tokens[end - 1])) {
            return end;
        }
        let sentence_end =
            (earliest + 1..=hard_end).rev().find(|&end| text[..tokens[end - 1].end].ends_with(SENTENCE_ENDS));
        sentence_end.unwrap_or(hard_end)
    }
}

/// Characters that end a sentence (or a clause worth ending a chunk on), in the scripts that
/// have their own: Latin, full-width CJK (Chinese and Japanese write no space after them),
/// half-width Japanese, Arabic, Devanagari and Bengali (danda), Armenian, Ethiopic, Greek,
/// Myanmar, Khmer and Tibetan, and the ellipsis.
const SENTENCE_ENDS: [char; 24] = [
    '.', '!', '?', ';', ':', '。', '！', '？', '；', '：', '｡', '؟', '؛', '۔', '।', '॥', '։', '።', '፧', '\u{037E}',
    '။', '។', '།', '…',
];

/// Where the tokenizer segment starting at `start` ends: at most `SEGMENT_BYTES` on, just after
/// the last whitespace before that (a character boundary when there is none).
fn segment_end(text: &str, start: usize, block_end: usize) -> usize {
    if block_end - start <= SEGMENT_BYTES {
        return block_end;
    }
    let mut limit = start + SEGMENT_BYTES;
    while !text.is_char_boundary(limit) {
        limit -= 1;
    }
    match text[start..limit].rfind(char::is_whitespace) {
        Some(at) if at > 0 => start + at + text[start + at..].chars().next().map_or(1, char::len_utf8),
        _ => limit,
    }
}

/// The block whose heading path a chunk of these tokens carries: its first block that is not a
/// heading, so headings leading the chunk are part of its path.
fn heading_anchor(tokens: &[Token]) -> usize {
    let first_text = tokens.iter().find(|token| !matches!(token.kind, BlockKind::Heading { .. }));
    first_text.unwrap_or(&tokens[0]).block
}

/// Index of the first token of the block that `tokens[index]` belongs to (tokens are in block
/// order, so a binary search finds it).
fn block_start(tokens: &[Token], index: usize) -> usize {
    let block = tokens[index].block;
    tokens[..index].partition_point(|token| token.block < block)
}

/// The heading path in force at each block: headings outermost first, a heading of level N
/// closing every open heading of level N or deeper. Blocks share one path until a heading
/// changes it, so memory grows with the headings, not the blocks.
struct HeadingPaths {
    paths: Vec<Vec<String>>,
    of_block: Vec<usize>,
}

impl HeadingPaths {
    fn of(document: &NormalizedDocument) -> Self {
        let mut open: Vec<(u8, String)> = Vec::new();
        let mut paths = vec![Vec::new()];
        let mut of_block = Vec::with_capacity(document.blocks.len());
        for block in &document.blocks {
            if let BlockKind::Heading { level } = block.kind {
                open.retain(|(open_level, _)| *open_level < level);
                let heading = &document.text[block.byte_start..block.byte_end];
                open.push((level, heading.chars().take(MAX_HEADING_CHARS).collect()));
                paths.push(open.iter().take(MAX_HEADING_DEPTH).map(|(_, text)| text.clone()).collect());
            }
            of_block.push(paths.len() - 1);
        }
        Self { paths, of_block }
    }

    fn at(&self, block: usize) -> &[String] {
        &self.paths[self.of_block[block]]
    }
}

/// Converts increasing (or slightly decreasing) byte offsets to character offsets without
/// rescanning the text from the start each time.
struct CharCounter<'t> {
    text: &'t str,
    byte: usize,
    chars: u32,
}

impl<'t> CharCounter<'t> {
    fn new(text: &'t str) -> Self {
        Self { text, byte: 0, chars: 0 }
    }

    fn at(&mut self, byte: usize) -> u32 {
        let count = |range: &str| u32::try_from(range.chars().count()).expect("text under 4G chars");
        if byte >= self.byte {
            self.chars += count(&self.text[self.byte..byte]);
        } else {
            self.chars -= count(&self.text[byte..self.byte]);
        }
        self.byte = byte;
        self.chars
    }
}
