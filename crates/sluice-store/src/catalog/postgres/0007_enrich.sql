-- Schema version 7: languages of documents and chunks, documents' metadata (see the SQLite
-- schema for what each column means).
ALTER TABLE documents ADD COLUMN language TEXT COLLATE "C";
ALTER TABLE documents ADD COLUMN metadata TEXT COLLATE "C" NOT NULL DEFAULT '{}';
ALTER TABLE chunks ADD COLUMN language TEXT COLLATE "C";
