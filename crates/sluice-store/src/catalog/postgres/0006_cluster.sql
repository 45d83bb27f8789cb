-- Schema version 6: the nodes that share the catalog, and the source files each has claimed
-- (see cluster.rs and the SQLite schema for what each column means).
CREATE TABLE nodes (
    id              TEXT COLLATE "C" PRIMARY KEY,
    pipeline        TEXT COLLATE "C" NOT NULL,
    role            TEXT COLLATE "C" NOT NULL,
    host            TEXT COLLATE "C" NOT NULL,
    address         TEXT COLLATE "C" NOT NULL,
    pid             BIGINT NOT NULL,
    started_at      BIGINT NOT NULL,
    heartbeat_at    BIGINT NOT NULL,
    applied_version BIGINT NOT NULL DEFAULT 0,
    stats           TEXT COLLATE "C" NOT NULL DEFAULT '{}'
);
CREATE TABLE claims (
    pipeline   TEXT COLLATE "C" NOT NULL,
    root       TEXT COLLATE "C" NOT NULL,
    rel_path   TEXT COLLATE "C" NOT NULL,
    node       TEXT COLLATE "C" NOT NULL,
    expires_at BIGINT NOT NULL,
    PRIMARY KEY (pipeline, root, rel_path)
);
CREATE INDEX claims_by_node ON claims (node);
