//! Tantivy: BM25 over chunk text, document titles and the headings above each chunk, one index
//! per pipeline, each chunk analysed for its language (`analyzers.rs`).
//!
//! Each Tantivy document is one appearance of a chunk, keyed by its point key. Tantivy cannot
//! update a field in place, so retiring a chunk deletes its document and adds it again with the
//! new `valid_to`; both steps are idempotent, which is what crash recovery relies on.

use std::ops::Bound;
use std::path::Path;
use std::sync::Mutex;

use sluice_core::{ChunkId, NormalizedFilter, PointKey, ReadAccess, Version};
use tantivy::collector::{DocSetCollector, TopDocs};
use tantivy::query::{
    AllQuery, BooleanQuery, ConstScoreQuery, Occur, PhraseQuery, Query, QueryParser, RangeQuery, TermQuery,
    TermSetQuery,
};
use tantivy::schema::{
    FAST, Field, INDEXED, IndexRecordOption, STORED, STRING, Schema, TextFieldIndexing, TextOptions, Value,
};
use tantivy::tokenizer::TokenStream;
use tantivy::{Index, IndexReader, IndexWriter, ReloadPolicy, TantivyDocument, Term};

use super::analyzers::{self, ANALYZERS, Analyzer};
use super::version_statistics::VisibilityCache;
use super::{LexicalAppearance, LexicalDoc, LexicalHit, LexicalIndex};
use crate::error::{Result, StoreError};
use crate::time_travel::Readable;

/// Heap budget of the index writer; Tantivy flushes a segment when it is used up.
const WRITER_HEAP_BYTES: usize = 64 << 20;
/// How far a search widens to take in every hit tied with its last one, in multiples of the
/// hits asked for (past it, a huge tie is cut where the index has it).
const MAX_TIE_WIDENING: usize = 16;
/// Words between a query's words that still count as the words together (`PHRASE_SLOP`), and
/// the most words a query is matched as a phrase for (a pasted paragraph is not a phrase).
const PHRASE_SLOP: u32 = 2;
const MAX_PHRASE_TERMS: usize = 16;
/// Share of deleted documents at which a segment is merged (rewritten without them).
const DELETED_RATIO_BEFORE_MERGE: f32 = 0.3;

/// Retiring a chunk deletes its document (and adds it again), and retention deletes old ones:
/// a segment that is 30% deleted is merged, so deleted documents leave the disk.
fn merge_policy() -> Box<tantivy::indexer::LogMergePolicy> {
    let mut policy = tantivy::indexer::LogMergePolicy::default();
    policy.set_del_docs_ratio_before_merge(DELETED_RATIO_BEFORE_MERGE);
    Box::new(policy)
}

/// The fields one analyzer indexes a chunk into.
#[derive(Clone, Copy)]
struct ProseFields {
    title: Field,
    headings: Field,
    text: Field,
}

#[derive(Clone)]
struct Fields {
    point_key: Field,
    chunk_id: Field,
    doc_id: Field,
    path: Field,
    /// Per analyzer, in the order of [`ANALYZERS`].
    prose: Vec<ProseFields>,
    /// The chunk's language (ISO 639-3, `und` when not known).
    language: Field,
    /// What filters select by (`DocumentFacets`), and the words of the chunk's headings.
    formats: Field,
    folders: Field,
    source: Field,
    authors: Field,
    date: Field,
    heading_words: Field,
    valid_from: Field,
    valid_to: Field,
    readers: Field,
}

/// The analyzer of heading filters: words in lower case, as `sluice_core::filter::words` cuts them.
const WORDS_ANALYZER: &str = "sluice_words";

/// The language term of a chunk whose language is not known.
const UNDETERMINED: &str = "und";

pub struct TantivyIndex {
    index: Index,
    fields: Fields,
    writer: Mutex<IndexWriter>,
    reader: IndexReader,
    /// Which documents recent versions see, for their BM25 statistics.
    visibility: Mutex<VisibilityCache>,
}

fn prose_field_name(role: &str, analyzer: &Analyzer) -> String {
    format!("{role}_{}", analyzer.name)
}

fn schema() -> Schema {
    let mut builder = Schema::builder();
    builder.add_text_field("point_key", STRING);
    builder.add_text_field("chunk_id", STRING | STORED);
    builder.add_text_field("doc_id", STRING);
    builder.add_text_field("path", TextOptions::default().set_indexing_options(TextFieldIndexing::default()));
    for analyzer in ANALYZERS {
        let prose = TextOptions::default().set_indexing_options(
            TextFieldIndexing::default()
                .set_tokenizer(&analyzer.tokenizer_name())
                .set_index_option(IndexRecordOption::WithFreqsAndPositions),
        );
        for role in ["title", "headings", "text"] {
            builder.add_text_field(&prose_field_name(role, analyzer), prose.clone());
        }
    }
    builder.add_text_field("language", STRING);
    for keyword in ["formats", "folders", "source", "authors"] {
        builder.add_text_field(keyword, STRING);
    }
    builder.add_i64_field("date", INDEXED);
    let words = TextFieldIndexing::default().set_tokenizer(WORDS_ANALYZER).set_index_option(IndexRecordOption::Basic);
    builder.add_text_field("heading_words", TextOptions::default().set_indexing_options(words));
    builder.add_i64_field("valid_from", INDEXED | FAST | STORED);
    builder.add_i64_field("valid_to", INDEXED | FAST);
    builder.add_text_field("readers", STRING | STORED);
    builder.build()
}

impl TantivyIndex {
    /// Opens (or creates) the index at `path`. An index written with an older schema is
    /// emptied and `true` is returned: the caller rebuilds it from the catalog.
    pub fn open(path: &Path) -> Result<(Self, bool)> {
        let io = |source| StoreError::Io { path: path.to_owned(), source };
        crate::lock::create_private_dir(path).map_err(io)?;
        let mut outdated = false;
        if path.join("meta.json").exists() {
            // Every field of this build's schema must be there, with the same options.
            let existing = Index::open_in_dir(path)?.schema();
            outdated = schema().fields().any(|(_, entry)| {
                existing.get_field(entry.name()).map_or(true, |field| existing.get_field_entry(field) != entry)
            });
        }
        if outdated {
            std::fs::remove_dir_all(path).map_err(io)?;
            crate::lock::create_private_dir(path).map_err(io)?;
        }
        let directory = tantivy::directory::MmapDirectory::open(path)?;
        let index = Index::open_or_create(directory, schema())?;
        for analyzer in ANALYZERS {
            index.tokenizers().register(&analyzer.tokenizer_name(), analyzer.build());
        }
        index.tokenizers().register(WORDS_ANALYZER, analyzers::words());
        let schema = index.schema();
        let field = |name: &str| {
            schema.get_field(name).map_err(|_| StoreError::Corrupt(format!("lexical index has no field {name}")))
        };
        let prose = ANALYZERS
            .iter()
            .map(|analyzer| {
                Ok(ProseFields {
                    title: field(&prose_field_name("title", analyzer))?,
                    headings: field(&prose_field_name("headings", analyzer))?,
                    text: field(&prose_field_name("text", analyzer))?,
                })
            })
            .collect::<Result<Vec<_>>>()?;
        let fields = Fields {
            point_key: field("point_key")?,
            chunk_id: field("chunk_id")?,
            doc_id: field("doc_id")?,
            path: field("path")?,
            prose,
            language: field("language")?,
            formats: field("formats")?,
            folders: field("folders")?,
            source: field("source")?,
            authors: field("authors")?,
            date: field("date")?,
            heading_words: field("heading_words")?,
            valid_from: field("valid_from")?,
            valid_to: field("valid_to")?,
            readers: field("readers")?,
        };
        let writer = index.writer_with_num_threads(1, WRITER_HEAP_BYTES)?;
        writer.set_merge_policy(merge_policy());
        let reader = index.reader_builder().reload_policy(ReloadPolicy::Manual).try_into()?;
        let visibility = Mutex::default();
        Ok((Self { index, fields, writer: Mutex::new(writer), reader, visibility }, outdated))
    }

    /// `query` analysed by the analyzer of every language the index holds, over their fields.
    ///
    /// The query syntax (`+must`, `-not`, `"a phrase"`) applies to the word-based analyzers
    /// (Tantivy's query parser turns the words one term yields into a phrase). The `cjk` fields
    /// are searched for the query's words as a bag instead: a run of Chinese characters is a
    /// single "term" to the parser, and its words as a phrase would have to be segmented exactly
    /// as the document's text around them was.
    fn analysed_query(&self, searcher: &tantivy::Searcher, query: &str) -> Result<Box<dyn Query>> {
        let analyzers = self.indexed_analyzers(searcher)?;
        let roles = |fields: &ProseFields| [fields.text, fields.title, fields.headings];
        let word_fields: Vec<Field> = analyzers
            .iter()
            .filter(|&&position| !ANALYZERS[position].segments_words())
            .flat_map(|&position| roles(&self.fields.prose[position]))
            .collect();
        let mut clauses: Vec<(Occur, Box<dyn Query>)> = Vec::new();
        if !word_fields.is_empty() {
            // Lenient: a query typed by a person never fails on a stray quote or colon.
            let (parsed, _errors) = QueryParser::for_index(&self.index, word_fields).parse_query_lenient(query);
            clauses.push((Occur::Should, parsed));
        }
        for &position in &analyzers {
            let analyzer = &ANALYZERS[position];
            let tokens = analyse(analyzer, query);
            let fields = self.fields.prose[position];
            if analyzer.segments_words() {
                let mut words: Vec<&str> = tokens.iter().map(|(_, word)| word.as_str()).collect();
                words.sort_unstable();
                words.dedup();
                for field in roles(&fields) {
                    for word in &words {
                        let term = Term::from_field_text(field, word);
                        clauses.push((Occur::Should, Box::new(TermQuery::new(term, IndexRecordOption::WithFreqs))));
                    }
                }
            }
            // The query's words where the text has them together score again: of two chunks
            // with the same words, the one that says what was asked comes first.
            if tokens.len() >= 2 && tokens.len() <= MAX_PHRASE_TERMS {
                let first = tokens[0].0;
                let terms =
                    tokens.iter().map(|(at, word)| (at - first, Term::from_field_text(fields.text, word))).collect();
                clauses.push((Occur::Should, Box::new(PhraseQuery::new_with_offset_and_slop(terms, PHRASE_SLOP))));
            }
        }
        Ok(Box::new(BooleanQuery::new(clauses)))
    }

    /// The chunks `filter` selects (`sluice_core::DocumentFacets::admits` in Tantivy's terms).
    fn filter_query(&self, filter: &NormalizedFilter) -> BooleanQuery {
        let any_of = |field: Field, values: &[String]| -> Box<dyn Query> {
            Box::new(TermSetQuery::new(values.iter().map(|value| Term::from_field_text(field, value))))
        };
        let term = |field: Field, value: &str| -> Box<dyn Query> {
            Box::new(TermQuery::new(Term::from_field_text(field, value), IndexRecordOption::Basic))
        };
        let mut must: Vec<Box<dyn Query>> = Vec::new();
        for (field, values) in [
            (self.fields.language, &filter.languages),
            (self.fields.formats, &filter.formats),
            (self.fields.source, &filter.sources),
            (self.fields.authors, &filter.authors),
        ] {
            if !values.is_empty() {
                must.push(any_of(field, values));
            }
        }
        if let Some(folder) = &filter.folder {
            must.push(term(self.fields.folders, folder));
        }
        if filter.date_from.is_some() || filter.date_to.is_some() {
            let bound = |date: Option<i64>| {
                date.map_or(Bound::Unbounded, |date| Bound::Included(Term::from_field_i64(self.fields.date, date)))
            };
            must.push(Box::new(RangeQuery::new(bound(filter.date_from), bound(filter.date_to))));
        }
        for word in &filter.heading_words {
            must.push(term(self.fields.heading_words, word));
        }
        BooleanQuery::new(must.into_iter().map(|query| (Occur::Must, query)).collect())
    }

    /// Positions in [`ANALYZERS`] of the analyzers of the languages the index holds (all of its
    /// segments, deleted documents included: a language no visible chunk has only adds clauses
    /// that match nothing).
    fn indexed_analyzers(&self, searcher: &tantivy::Searcher) -> Result<Vec<usize>> {
        let mut positions = std::collections::BTreeSet::new();
        for segment in searcher.segment_readers() {
            let languages = segment.inverted_index(self.fields.language)?;
            let mut terms = languages.terms().stream().map_err(tantivy::TantivyError::from)?;
            while terms.advance() {
                let code = std::str::from_utf8(terms.key()).unwrap_or(UNDETERMINED);
                positions.insert(analyzers::position_of(Some(code).filter(|&code| code != UNDETERMINED)));
            }
        }
        if positions.is_empty() {
            positions.insert(analyzers::position_of(Some("eng")));
        }
        Ok(positions.into_iter().collect())
    }

    fn key_term(&self, key: &PointKey) -> Term {
        Term::from_field_text(self.fields.point_key, &key.uuid().to_string())
    }

    fn version_filter(&self, query: Box<dyn Query>, version: Version) -> BooleanQuery {
        let from =
            RangeQuery::new(Bound::Unbounded, Bound::Included(Term::from_field_i64(self.fields.valid_from, version)));
        let to =
            RangeQuery::new(Bound::Excluded(Term::from_field_i64(self.fields.valid_to, version)), Bound::Unbounded);
        // Filters score zero: Tantivy scores a range clause 1.0 in some segments and 0 in others
        // (whether every document of the segment matches), which would reorder the hits.
        let filter = |range: RangeQuery| -> Box<dyn Query> { Box::new(ConstScoreQuery::new(Box::new(range), 0.0)) };
        BooleanQuery::new(vec![(Occur::Must, query), (Occur::Must, filter(from)), (Occur::Must, filter(to))])
    }

    fn key_of(&self, document: &TantivyDocument) -> Result<(ChunkId, Version)> {
        let chunk_id = document
            .get_first(self.fields.chunk_id)
            .and_then(|value| value.as_str())
            .and_then(ChunkId::parse)
            .ok_or_else(|| StoreError::Corrupt("a lexical document has no chunk_id".into()))?;
        let valid_from = document
            .get_first(self.fields.valid_from)
            .and_then(|value| value.as_i64())
            .ok_or_else(|| StoreError::Corrupt("a lexical document has no valid_from".into()))?;
        Ok((chunk_id, valid_from))
    }
}

/// The tokens `analyzer` makes of `text`, with their positions.
fn analyse(analyzer: &Analyzer, text: &str) -> Vec<(usize, String)> {
    let mut analyzer = analyzer.build();
    let mut stream = analyzer.token_stream(text);
    let mut tokens = Vec::new();
    while stream.advance() {
        tokens.push((stream.token().position, stream.token().text.clone()));
    }
    tokens
}

impl LexicalIndex for TantivyIndex {
    /// Writes these chunk appearances, replacing any earlier copy of the same key. Idempotent.
    fn put(&self, docs: &[LexicalDoc<'_>]) -> Result<()> {
        let writer = self.writer.lock().expect("lexical writer lock");
        for doc in docs {
            writer.delete_term(self.key_term(&doc.key));
            let mut document = TantivyDocument::default();
            document.add_text(self.fields.point_key, doc.key.uuid().to_string());
            document.add_text(self.fields.chunk_id, doc.key.chunk.to_hex());
            document.add_text(self.fields.doc_id, &doc.doc_id);
            document.add_text(self.fields.path, doc.path);
            let prose = self.fields.prose[analyzers::position_of(doc.language)];
            if let Some(title) = doc.title {
                document.add_text(prose.title, title);
            }
            document.add_text(prose.text, doc.text);
            for heading in doc.headings {
                document.add_text(prose.headings, heading);
            }
            document.add_text(self.fields.language, doc.language.unwrap_or(UNDETERMINED));
            let facets = &doc.facets;
            for (field, values) in [
                (self.fields.formats, &facets.formats),
                (self.fields.folders, &facets.folders),
                (self.fields.authors, &facets.authors),
            ] {
                for value in values {
                    document.add_text(field, value);
                }
            }
            document.add_text(self.fields.source, &facets.source);
            if let Some(date) = facets.date {
                document.add_i64(self.fields.date, date);
            }
            for heading in doc.headings {
                document.add_text(self.fields.heading_words, heading);
            }
            document.add_i64(self.fields.valid_from, doc.key.valid_from);
            document.add_i64(self.fields.valid_to, doc.valid_to);
            for key in doc.readers {
                document.add_text(self.fields.readers, key);
            }
            writer.add_document(document)?;
        }
        Ok(())
    }

    /// Deletes these chunk appearances (retention). Idempotent; takes effect at `commit`.
    fn delete(&self, keys: &[PointKey]) {
        let writer = self.writer.lock().expect("lexical writer lock");
        for key in keys {
            writer.delete_term(self.key_term(key));
        }
    }

    /// Deletes every chunk appearance that became visible at `version` (rollback).
    fn delete_added_at(&self, version: Version) {
        let writer = self.writer.lock().expect("lexical writer lock");
        writer.delete_term(Term::from_field_i64(self.fields.valid_from, version));
    }

    fn retired_at(&self, version: Version) -> Result<Vec<PointKey>> {
        let searcher = self.reader.searcher();
        let retired = TermQuery::new(Term::from_field_i64(self.fields.valid_to, version), IndexRecordOption::Basic);
        let mut keys = Vec::new();
        for address in searcher.search(&retired, &DocSetCollector)? {
            let (chunk, valid_from) = self.key_of(&searcher.doc(address)?)?;
            keys.push(PointKey { chunk, valid_from });
        }
        keys.sort_by_key(|key| (key.valid_from, key.chunk));
        Ok(keys)
    }

    fn unreachable(&self, retained: &[Version]) -> Result<Vec<PointKey>> {
        let searcher = self.reader.searcher();
        let mut keys = Vec::new();
        for (ordinal, segment) in searcher.segment_readers().iter().enumerate() {
            let valid_from = segment.fast_fields().i64("valid_from")?;
            let valid_to = segment.fast_fields().i64("valid_to")?;
            for doc in segment.doc_ids_alive() {
                let (from, to) = (valid_from.first(doc).unwrap_or(0), valid_to.first(doc).unwrap_or(0));
                // The first retained version at or after `from` is the one that could see it.
                let first_seen = retained.get(retained.partition_point(|&version| version < from));
                if first_seen.is_none_or(|&version| version >= to) {
                    let (chunk, valid_from) =
                        self.key_of(&searcher.doc(tantivy::DocAddress::new(ordinal as u32, doc))?)?;
                    keys.push(PointKey { chunk, valid_from });
                }
            }
        }
        Ok(keys)
    }

    /// Drops every write since the last commit. A commit that failed (a full disk) can leave
    /// the writer with half-flushed work, or stopped: this gives it a fresh start.
    fn discard_uncommitted(&self) -> Result<()> {
        let mut writer = self.writer.lock().expect("lexical writer lock");
        writer.rollback()?;
        writer.set_merge_policy(merge_policy());
        Ok(())
    }

    /// Makes every write so far durable and visible to new searches.
    fn commit(&self) -> Result<()> {
        self.writer.lock().expect("lexical writer lock").commit()?;
        self.reader.reload()?;
        Ok(())
    }

    /// BM25 search over text and title, restricted to chunks visible at `version` that
    /// `access` may read. Both restrictions are clauses of the query itself (scoring zero), so
    /// the top `limit` are the best *readable* chunks, not what is left of the best ones. The
    /// BM25 statistics are those of the version (`version_statistics.rs`).
    fn search(&self, query: &str, version: Version, readable: Readable<'_>, limit: usize) -> Result<Vec<LexicalHit>> {
        let (access, hidden_docs) = (readable.access, readable.hidden_docs);
        let searcher = self.reader.searcher();
        let parsed = self.analysed_query(&searcher, query)?;
        let mut query = self.version_filter(parsed, version);
        if let ReadAccess::Keys(keys) = access {
            let terms = keys.iter().map(|key| Term::from_field_text(self.fields.readers, key));
            let readable = ConstScoreQuery::new(Box::new(TermSetQuery::new(terms)), 0.0);
            query = BooleanQuery::new(vec![(Occur::Must, Box::new(query)), (Occur::Must, Box::new(readable))]);
        }
        if !readable.filter.is_empty() {
            let filter = ConstScoreQuery::new(Box::new(self.filter_query(readable.filter)), 0.0);
            query = BooleanQuery::new(vec![(Occur::Must, Box::new(query)), (Occur::Must, Box::new(filter))]);
        }
        if !hidden_docs.is_empty() {
            let terms = hidden_docs.iter().map(|doc_id| Term::from_field_text(self.fields.doc_id, doc_id));
            let hidden = TermSetQuery::new(terms);
            query = BooleanQuery::new(vec![(Occur::Must, Box::new(query)), (Occur::MustNot, Box::new(hidden))]);
        }
        let statistics = VisibilityCache::statistics(&self.visibility, &searcher, version)?;
        // Equal scores are ordered by chunk id, not by where documents sit in the index (which
        // differs between nodes and changes as segments merge). So the hits at the cut must
        // include every document tied with the last one kept: one more than asked for, and more
        // while the extra one ties with the cut.
        let limit = limit.max(1);
        let mut wanted = limit + 1;
        let top = loop {
            let collector = TopDocs::with_limit(wanted).order_by_score();
            let top = searcher.search_with_statistics_provider(&query, &collector, &statistics)?;
            let tie_goes_on = top.len() == wanted && top[wanted - 1].0 == top[limit - 1].0;
            if !tie_goes_on || wanted >= limit * MAX_TIE_WIDENING {
                break top;
            }
            wanted *= 2;
        };
        let mut hits = top
            .into_iter()
            .map(|(score, address)| {
                let document: TantivyDocument = searcher.doc(address)?;
                let (chunk_id, valid_from) = self.key_of(&document)?;
                Ok(LexicalHit { chunk_id, valid_from, score })
            })
            .collect::<Result<Vec<_>>>()?;
        hits.sort_by(|a, b| b.score.total_cmp(&a.score).then(a.chunk_id.cmp(&b.chunk_id)));
        hits.truncate(limit);
        Ok(hits)
    }

    /// Chunk ids of every document visible at `version`, sorted.
    fn chunk_ids_visible_at(&self, version: Version) -> Result<Vec<ChunkId>> {
        let searcher = self.reader.searcher();
        let addresses = searcher.search(&self.version_filter(Box::new(AllQuery), version), &DocSetCollector)?;
        let mut ids = Vec::with_capacity(addresses.len());
        for address in addresses {
            let document: TantivyDocument = searcher.doc(address)?;
            ids.push(self.key_of(&document)?.0);
        }
        ids.sort();
        Ok(ids)
    }

    /// Every document, sorted by (chunk id, valid_from); for `verify`.
    fn appearances(&self) -> Result<Vec<LexicalAppearance>> {
        let searcher = self.reader.searcher();
        let mut all = Vec::new();
        for (ordinal, segment) in searcher.segment_readers().iter().enumerate() {
            let valid_to = segment.fast_fields().i64("valid_to")?;
            for doc in segment.doc_ids_alive() {
                let address = tantivy::DocAddress::new(ordinal as u32, doc);
                let document: TantivyDocument = searcher.doc(address)?;
                let (chunk_id, valid_from) = self.key_of(&document)?;
                let to = valid_to
                    .first(doc)
                    .ok_or_else(|| StoreError::Corrupt("a lexical document has no valid_to".into()))?;
                let readers = document
                    .get_all(self.fields.readers)
                    .filter_map(|value| value.as_str().map(str::to_owned))
                    .collect();
                all.push(LexicalAppearance { chunk_id, valid_from, valid_to: to, readers });
            }
        }
        all.sort_by_key(|doc| (doc.chunk_id, doc.valid_from));
        Ok(all)
    }

    /// Documents in the index, whatever their versions.
    fn doc_count(&self) -> u64 {
        self.reader.searcher().num_docs()
    }
}

#[cfg(test)]
mod tests {
    use sluice_core::{DocumentFacets, VERSION_OPEN};

    use super::*;

    const TEXTS: [&str; 4] = [
        "tidal energy from the estuary barrage",
        "the barrage holds back the estuary at high tide",
        "estuary birds feed on the mudflats",
        "energy prices rose in the winter",
    ];

    fn doc(index: usize, valid_from: Version, valid_to: Version) -> LexicalDoc<'static> {
        LexicalDoc {
            key: PointKey { chunk: ChunkId::from_bytes([index as u8; 32]), valid_from },
            valid_to,
            doc_id: format!("doc{index}"),
            path: "a.txt",
            title: None,
            text: TEXTS[index],
            headings: &[],
            readers: &[],
            language: None,
            facets: DocumentFacets::default(),
        }
    }

    fn scores(index: &TantivyIndex, version: Version) -> Vec<(ChunkId, f32)> {
        let hits = index.search("estuary energy", version, Readable::unrestricted(), 10).unwrap();
        hits.into_iter().map(|hit| (hit.chunk_id, hit.score)).collect()
    }

    /// The same chunks visible at a version score the same, whatever else the index holds:
    /// other versions' appearances, deleted copies of re-written documents, several segments.
    #[test]
    fn scores_at_a_version_do_not_depend_on_the_index_history() {
        let dir = tempfile::tempdir().unwrap();
        let (plain, _) = TantivyIndex::open(&dir.path().join("plain")).unwrap();
        plain.put(&(0..3).map(|i| doc(i, 1, VERSION_OPEN)).collect::<Vec<_>>()).unwrap();
        plain.commit().unwrap();

        let (busy, _) = TantivyIndex::open(&dir.path().join("busy")).unwrap();
        // Version 1 seen with a fourth chunk that version 2 retires, in segments of their own,
        // and every document written twice (a deleted copy each).
        for _ in 0..2 {
            busy.put(&(0..4).map(|i| doc(i, 1, VERSION_OPEN)).collect::<Vec<_>>()).unwrap();
            busy.commit().unwrap();
        }
        busy.put(&[doc(3, 1, 2)]).unwrap();
        busy.put(&[doc(2, 1, 2), doc(2, 2, VERSION_OPEN)]).unwrap();
        busy.commit().unwrap();

        let at_two = scores(&busy, 2);
        assert_eq!(at_two.len(), 3, "{at_two:?}");
        assert_eq!(at_two, scores(&plain, 1));
    }

    /// Hits with equal scores come in chunk id order, and the cut keeps the same ones, whatever
    /// order the index holds them in.
    #[test]
    fn ties_are_ordered_by_chunk_id_not_by_position_in_the_index() {
        let twin = |byte: u8| LexicalDoc {
            key: PointKey { chunk: ChunkId::from_bytes([byte; 32]), valid_from: 1 },
            text: "tidal estuary",
            ..doc(0, 1, VERSION_OPEN)
        };
        let dir = tempfile::tempdir().unwrap();
        let mut answers = Vec::new();
        for (name, order) in [("up", [1u8, 2, 3, 4, 5]), ("down", [5, 4, 3, 2, 1])] {
            let (index, _) = TantivyIndex::open(&dir.path().join(name)).unwrap();
            for byte in order {
                index.put(&[twin(byte)]).unwrap();
                index.commit().unwrap(); // a segment each
            }
            let hits = index.search("estuary", 1, Readable::unrestricted(), 2).unwrap();
            answers.push(hits.into_iter().map(|hit| hit.chunk_id).collect::<Vec<_>>());
        }
        assert_eq!(answers[0], [ChunkId::from_bytes([1; 32]), ChunkId::from_bytes([2; 32])]);
        assert_eq!(answers[1], answers[0]);
    }

    /// What retention or a rollback elsewhere leaves behind is found from the index alone.
    #[test]
    fn finds_what_a_version_retired_and_what_no_retained_version_sees() {
        let dir = tempfile::tempdir().unwrap();
        let (index, _) = TantivyIndex::open(dir.path()).unwrap();
        index.put(&[doc(0, 1, 3), doc(1, 2, VERSION_OPEN), doc(2, 4, 5)]).unwrap();
        index.commit().unwrap();
        let key = |i: u8, valid_from| PointKey { chunk: ChunkId::from_bytes([i; 32]), valid_from };
        assert_eq!(index.retired_at(3).unwrap(), [key(0, 1)]);
        assert_eq!(index.retired_at(4).unwrap(), []);
        let mut unreachable = index.unreachable(&[3, 5]).unwrap();
        unreachable.sort_by_key(|key| key.valid_from);
        assert_eq!(unreachable, [key(0, 1), key(2, 4)]);
        assert_eq!(index.unreachable(&[1, 2, 4]).unwrap(), []);
    }
}
