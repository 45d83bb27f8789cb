-- Schema version 7: languages of documents and chunks, documents' metadata and MinHash
-- signatures with their LSH band keys (see the SQLite schema for what each column means).
ALTER TABLE documents ADD COLUMN language TEXT COLLATE "C";
ALTER TABLE documents ADD COLUMN metadata TEXT COLLATE "C" NOT NULL DEFAULT '{}';
ALTER TABLE documents ADD COLUMN minhash BYTEA;
ALTER TABLE documents ADD COLUMN similarity DOUBLE PRECISION;
ALTER TABLE chunks ADD COLUMN language TEXT COLLATE "C";
CREATE TABLE near_dup_bands (
    pipeline TEXT COLLATE "C" NOT NULL,
    key      BIGINT NOT NULL,
    document BIGINT NOT NULL
);
CREATE INDEX near_dup_bands_by_key ON near_dup_bands (pipeline, key);
