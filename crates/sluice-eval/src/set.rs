//! Evaluation sets: queries with their graded relevant documents, from a BEIR folder or a simple
//! JSONL file, loaded into one [`EvalSet`].
//!
//! Document keys stay as the file spells them (a BEIR corpus-id, a JSONL path); mapping them to
//! the retriever's documents is the caller's job. A grade of 0 or below means "judged not
//! relevant" (trec_eval's default relevance level is 1), so it is dropped on load and
//! `relevant` only ever holds grades above 0.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::fs;
use std::path::Path;

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::EvalError;

/// Queries in file order, with unique ids, each with at least one relevant document.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EvalSet {
    pub queries: Vec<EvalQuery>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EvalQuery {
    pub id: String,
    pub text: String,
    /// Document key to graded relevance (> 0).
    pub relevant: BTreeMap<String, u32>,
}

/// A directory is read as a BEIR folder (with `split`), a file as simple JSONL.
pub fn load(path: &Path, split: &str) -> Result<EvalSet, EvalError> {
    if path.is_dir() { load_beir(path, split) } else { load_jsonl(path) }
}

/// Loads `queries.jsonl` and `qrels/<split>.tsv` from a BEIR folder.
///
/// Only queries with at least one judgement above 0 are kept, following BEIR's convention of
/// evaluating the queries its qrels name: a query with no relevant document scores 0 whatever
/// the retriever does. (BEIR's own loader also keeps a query whose judgements are all 0, which
/// then lowers every mean; such queries are dropped here.) Queries in `queries.jsonl` without
/// qrels belong to other splits and are skipped. A pair judged twice keeps its last score, as
/// BEIR's loader does.
pub fn load_beir(dir: &Path, split: &str) -> Result<EvalSet, EvalError> {
    let qrels_path = dir.join("qrels").join(format!("{split}.tsv"));
    let mut qrels = read_qrels(&qrels_path)?;

    let queries_path = dir.join("queries.jsonl");
    let content = read(&queries_path)?;
    let mut seen = HashSet::new();
    let mut queries = Vec::new();
    for (line, text) in numbered_lines(&content) {
        let record = parse_object(&queries_path, line, text)?;
        let id = string_field(&queries_path, line, &record, "_id")?;
        let text = string_field(&queries_path, line, &record, "text")?;
        if !seen.insert(id.clone()) {
            return Err(EvalError::DuplicateQuery { path: queries_path, line, id });
        }
        let Some(judged) = qrels.remove(&id) else { continue };
        let relevant: BTreeMap<String, u32> =
            judged.scores.into_iter().filter_map(|(key, score)| Some((key, relevant_grade(score)?))).collect();
        if !relevant.is_empty() {
            queries.push(EvalQuery { id, text, relevant });
        }
    }
    if let Some((id, judged)) = qrels.into_iter().min_by_key(|(_, judged)| judged.first_line) {
        return Err(EvalError::UnknownQuery { path: qrels_path, line: judged.first_line, id });
    }
    non_empty(queries, &qrels_path)
}

/// Loads one `{"query": ..., "relevant": ...}` object per line.
///
/// `relevant` is a list of keys (each grade 1) or an object of key to grade. `id` is optional
/// and defaults to the 1-based line number, which must not collide with an explicit id.
pub fn load_jsonl(path: &Path) -> Result<EvalSet, EvalError> {
    let content = read(path)?;
    let mut seen = HashSet::new();
    let mut queries = Vec::new();
    for (line, text) in numbered_lines(&content) {
        let record = parse_object(path, line, text)?;
        let query_text = string_field(path, line, &record, "query")?;
        let id = match record.get("id") {
            None => line.to_string(),
            Some(Value::String(id)) => id.clone(),
            Some(Value::Number(id)) if id.is_i64() || id.is_u64() => id.to_string(),
            Some(_) => return Err(malformed(path, line, "field `id` must be a string or an integer")),
        };
        let relevant = jsonl_relevant(path, line, record.get("relevant"))?;
        if relevant.is_empty() {
            return Err(EvalError::NoRelevant { path: path.to_owned(), line, id });
        }
        if !seen.insert(id.clone()) {
            return Err(EvalError::DuplicateQuery { path: path.to_owned(), line, id });
        }
        queries.push(EvalQuery { id, text: query_text, relevant });
    }
    non_empty(queries, path)
}

/// One query's judgements from a qrels file, with where they start (to locate errors).
struct Judged {
    first_line: usize,
    scores: BTreeMap<String, i64>,
}

/// Reads `query-id<TAB>corpus-id<TAB>score` lines after a header line.
fn read_qrels(path: &Path) -> Result<HashMap<String, Judged>, EvalError> {
    let content = read(path)?;
    let mut lines = numbered_lines(&content);
    if let Some((line, header)) = lines.next() {
        // BEIR skips the first line unread; a judgement there would be lost silently.
        let looks_like_judgement = header.split('\t').nth(2).is_some_and(|score| score.trim().parse::<i64>().is_ok());
        if looks_like_judgement {
            return Err(malformed(path, line, "expected the header `query-id<TAB>corpus-id<TAB>score` first"));
        }
    }
    let mut judged_by_query: HashMap<String, Judged> = HashMap::new();
    for (line, text) in lines {
        let [query_id, corpus_id, score] = text.split('\t').collect::<Vec<_>>()[..] else {
            return Err(malformed(path, line, "expected three tab-separated fields: query-id, corpus-id, score"));
        };
        let score_text = score.trim();
        let Some(score) = score_text.parse::<i64>().ok().filter(|&score| score <= i64::from(u32::MAX)) else {
            return Err(EvalError::BadScore { path: path.to_owned(), line, value: score_text.to_owned() });
        };
        if query_id.is_empty() || corpus_id.is_empty() {
            return Err(malformed(path, line, "empty query-id or corpus-id"));
        }
        judged_by_query
            .entry(query_id.to_owned())
            .or_insert_with(|| Judged { first_line: line, scores: BTreeMap::new() })
            .scores
            .insert(corpus_id.to_owned(), score);
    }
    Ok(judged_by_query)
}

fn jsonl_relevant(path: &Path, line: usize, relevant: Option<&Value>) -> Result<BTreeMap<String, u32>, EvalError> {
    let expected = "field `relevant` must be a list of document keys or an object of key to grade";
    match relevant {
        Some(Value::Array(keys)) => keys
            .iter()
            .map(|key| key.as_str().map(|key| (key.to_owned(), 1)).ok_or_else(|| malformed(path, line, expected)))
            .collect(),
        Some(Value::Object(grades)) => {
            let mut relevant = BTreeMap::new();
            for (key, grade) in grades {
                let Some(score) = grade.as_i64().filter(|&score| score <= i64::from(u32::MAX)) else {
                    return Err(EvalError::BadScore { path: path.to_owned(), line, value: grade.to_string() });
                };
                if let Some(grade) = relevant_grade(score) {
                    relevant.insert(key.clone(), grade);
                }
            }
            Ok(relevant)
        }
        _ => Err(malformed(path, line, expected)),
    }
}

/// A score as a relevance grade, or `None` for "not relevant" (0 or below).
fn relevant_grade(score: i64) -> Option<u32> {
    u32::try_from(score).ok().filter(|&grade| grade > 0)
}

fn non_empty(queries: Vec<EvalQuery>, path: &Path) -> Result<EvalSet, EvalError> {
    if queries.is_empty() {
        return Err(EvalError::EmptySet { path: path.to_owned() });
    }
    Ok(EvalSet { queries })
}

fn read(path: &Path) -> Result<String, EvalError> {
    fs::read_to_string(path).map_err(|source| EvalError::Io { path: path.to_owned(), source })
}

/// Non-blank lines with their 1-based numbers; a byte-order mark and `\r\n` endings are accepted.
fn numbered_lines(content: &str) -> impl Iterator<Item = (usize, &str)> {
    let content = content.strip_prefix('\u{feff}').unwrap_or(content);
    content.lines().enumerate().map(|(index, text)| (index + 1, text)).filter(|(_, text)| !text.trim().is_empty())
}

fn parse_object(path: &Path, line: usize, text: &str) -> Result<Map<String, Value>, EvalError> {
    match serde_json::from_str(text) {
        Ok(Value::Object(record)) => Ok(record),
        Ok(_) => Err(malformed(path, line, "expected a JSON object")),
        Err(source) => Err(EvalError::Json { path: path.to_owned(), line, source }),
    }
}

fn string_field(path: &Path, line: usize, record: &Map<String, Value>, field: &str) -> Result<String, EvalError> {
    match record.get(field) {
        Some(Value::String(value)) => Ok(value.clone()),
        Some(_) => Err(malformed(path, line, &format!("field `{field}` must be a string"))),
        None => Err(malformed(path, line, &format!("missing field `{field}`"))),
    }
}

fn malformed(path: &Path, line: usize, reason: &str) -> EvalError {
    EvalError::Malformed { path: path.to_owned(), line, reason: reason.to_owned() }
}

#[cfg(test)]
mod tests {
    use std::path::PathBuf;

    use super::*;

    fn write(dir: &Path, name: &str, content: &str) -> PathBuf {
        let path = dir.join(name);
        fs::create_dir_all(path.parent().unwrap()).unwrap();
        fs::write(&path, content).unwrap();
        path
    }

    fn grades(pairs: &[(&str, u32)]) -> BTreeMap<String, u32> {
        pairs.iter().map(|&(key, grade)| (key.to_owned(), grade)).collect()
    }

    /// A BEIR folder with the given `qrels/test.tsv` and four queries, q1 to q4.
    fn beir_folder(qrels: &str) -> tempfile::TempDir {
        let dir = tempfile::tempdir().unwrap();
        let queries = [
            r#"{"_id": "q1", "text": "first", "metadata": {}}"#,
            r#"{"_id": "q2", "text": "second"}"#,
            r#"{"_id": "q3", "text": "third"}"#,
            r#"{"_id": "q4", "text": "fourth"}"#,
        ];
        write(dir.path(), "queries.jsonl", &queries.join("\n"));
        write(dir.path(), "qrels/test.tsv", qrels);
        dir
    }

    #[test]
    fn beir_keeps_queries_with_a_relevant_judgement_in_file_order() {
        // CRLF endings, as SciFact's qrels have. q1's d2 (score 0) is dropped; q2 has only a 0;
        // q4 has no qrels at all; q3 is listed before q1 in the qrels but follows it in queries.
        let dir = beir_folder("query-id\tcorpus-id\tscore\r\nq3\td3\t1\r\nq1\td1\t2\r\nq1\td2\t0\r\nq2\td9\t0\r\n");
        let set = load(dir.path(), "test").unwrap();
        let expected = vec![
            EvalQuery { id: "q1".into(), text: "first".into(), relevant: grades(&[("d1", 2)]) },
            EvalQuery { id: "q3".into(), text: "third".into(), relevant: grades(&[("d3", 1)]) },
        ];
        assert_eq!(set.queries, expected);
    }

    #[test]
    fn beir_errors_name_the_qrels_line() {
        let dir = beir_folder("query-id\tcorpus-id\tscore\nq1\td1\t1\nq1\td2\thigh\n");
        let error = load_beir(dir.path(), "test").unwrap_err();
        assert!(matches!(&error, EvalError::BadScore { line: 3, value, .. } if value == "high"), "{error}");
        assert!(error.to_string().contains("test.tsv:3: bad relevance score `high`"), "{error}");

        let dir = beir_folder("query-id\tcorpus-id\tscore\nq1\td1\t1\nq1 d2 1\n");
        assert!(matches!(load_beir(dir.path(), "test"), Err(EvalError::Malformed { line: 3, .. })));

        let dir = beir_folder("q1\td1\t1\nq3\td3\t1\n");
        assert!(matches!(load_beir(dir.path(), "test"), Err(EvalError::Malformed { line: 1, .. })), "no header");

        let dir = beir_folder("query-id\tcorpus-id\tscore\nq1\td1\t1\nq9\td1\t1\n");
        let error = load_beir(dir.path(), "test").unwrap_err();
        assert!(matches!(&error, EvalError::UnknownQuery { line: 3, id, .. } if id == "q9"), "{error}");

        let dir = beir_folder("query-id\tcorpus-id\tscore\nq1\td1\t0\n");
        assert!(matches!(load_beir(dir.path(), "test"), Err(EvalError::EmptySet { .. })));

        assert!(matches!(load_beir(dir.path(), "dev"), Err(EvalError::Io { .. })), "no such split");
    }

    #[test]
    fn beir_rejects_a_duplicate_query_id() {
        let dir = beir_folder("query-id\tcorpus-id\tscore\nq1\td1\t1\n");
        write(
            dir.path(),
            "queries.jsonl",
            "{\"_id\": \"q1\", \"text\": \"a\"}\n\n{\"_id\": \"q1\", \"text\": \"b\"}\n",
        );
        let error = load_beir(dir.path(), "test").unwrap_err();
        assert!(matches!(&error, EvalError::DuplicateQuery { line: 3, id, .. } if id == "q1"), "{error}");
    }

    #[test]
    fn jsonl_reads_both_relevant_forms() {
        let dir = tempfile::tempdir().unwrap();
        let lines = [
            r#"{"query": "listed", "relevant": ["path/a.pdf", "b.txt"]}"#,
            "",
            r#"{"id": "graded", "query": "with grades", "relevant": {"a.pdf": 2, "b.txt": 1, "c.txt": 0}}"#,
        ];
        let path = write(dir.path(), "set.jsonl", &lines.join("\n"));
        let set = load(&path, "ignored").unwrap();
        let expected = vec![
            EvalQuery { id: "1".into(), text: "listed".into(), relevant: grades(&[("b.txt", 1), ("path/a.pdf", 1)]) },
            EvalQuery {
                id: "graded".into(),
                text: "with grades".into(),
                relevant: grades(&[("a.pdf", 2), ("b.txt", 1)]),
            },
        ];
        assert_eq!(set.queries, expected);
    }

    #[test]
    fn jsonl_errors_name_the_line() {
        let dir = tempfile::tempdir().unwrap();
        let good = r#"{"query": "q", "relevant": ["a"]}"#;
        let load_lines = |lines: &[&str]| load_jsonl(&write(dir.path(), "set.jsonl", &lines.join("\n")));

        let error = load_lines(&[good, r#"{"query": "q", "relevant": ["a"]"#]).unwrap_err();
        assert!(matches!(error, EvalError::Json { line: 2, .. }), "{error}");
        assert!(error.to_string().contains("set.jsonl:2: invalid JSON"), "{error}");

        let error = load_lines(&[r#"{"relevant": ["a"]}"#]).unwrap_err();
        assert!(matches!(&error, EvalError::Malformed { line: 1, reason, .. } if reason == "missing field `query`"));

        let error = load_lines(&[good, good, r#"{"query": "q"}"#]).unwrap_err();
        assert!(matches!(&error, EvalError::Malformed { line: 3, reason, .. } if reason.contains("`relevant`")));

        let error = load_lines(&[good, r#"{"query": "q", "relevant": {"a": 1.5}}"#]).unwrap_err();
        assert!(matches!(&error, EvalError::BadScore { line: 2, value, .. } if value == "1.5"), "{error}");

        let error = load_lines(&[r#"{"id": "3", "query": "q", "relevant": ["a"]}"#, good, good]).unwrap_err();
        assert!(matches!(&error, EvalError::DuplicateQuery { line: 3, id, .. } if id == "3"), "{error}");

        let error = load_lines(&[good, r#"{"query": "q", "relevant": {"a": 0}}"#]).unwrap_err();
        assert!(matches!(&error, EvalError::NoRelevant { line: 2, id, .. } if id == "2"), "{error}");

        assert!(matches!(load_lines(&["", "  "]), Err(EvalError::EmptySet { .. })));
    }

    /// The real SciFact set from `../shared/corpora/scifact`, where this machine has it.
    #[test]
    fn loads_scifact_when_present() {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../../shared/corpora/scifact");
        // Counted by hand from the files: train has 809 queries over 919 relevant pairs. BEIR
        // publishes 300 test queries; their pair count has not been checked here.
        for (split, queries, pairs) in [("train", 809, Some(919)), ("test", 300, None)] {
            if !dir.join(format!("qrels/{split}.tsv")).is_file() {
                eprintln!("SKIPPED loads_scifact_when_present ({split}): {} lacks qrels/{split}.tsv", dir.display());
                continue;
            }
            let set = load(&dir, split).unwrap();
            assert_eq!(set.queries.len(), queries, "{split} queries");
            if let Some(pairs) = pairs {
                assert_eq!(set.queries.iter().map(|query| query.relevant.len()).sum::<usize>(), pairs, "{split} pairs");
            }
        }
    }
}
