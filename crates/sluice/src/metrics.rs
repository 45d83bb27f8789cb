//! Every metric the daemon exports, by name, in one place. Metrics carry no document content.

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;
use sluice_core::Stage;
use sluice_pipeline::{Observer, Outcome};
use sluice_store::DocumentCost;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct OutcomeLabels {
    pub outcome: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ReasonLabels {
    pub reason: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct StageLabels {
    pub stage: &'static str,
}

/// A stage and the resource measured in it (`wall`, `cpu`, `gpu`).
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct CostLabels {
    pub stage: &'static str,
    pub resource: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ModeLabels {
    pub mode: &'static str,
}

/// This process as a node of its catalog, to join its other metrics with `sluice nodes`.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct NodeLabels {
    pub node: String,
    pub role: &'static str,
}

/// The catalog's nodes by role and by whether their heartbeat is recent.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ClusterLabels {
    pub role: &'static str,
    pub alive: &'static str,
}

fn duration_histogram() -> Histogram {
    // 1 ms .. ~65 s.
    Histogram::new(exponential_buckets(0.001, 2.0, 17))
}

pub struct Metrics {
    registry: Registry,
    pub documents: Family<OutcomeLabels, Counter>,
    pub quarantined: Family<ReasonLabels, Counter>,
    pub chunks_written: Counter,
    pub embeddings_computed: Counter,
    pub embedding_cache_hits: Counter,
    pub stage_duration: Family<StageLabels, Histogram, fn() -> Histogram>,
    pub runs: Family<OutcomeLabels, Counter>,
    pub live_version: Gauge,
    pub search_duration: Family<ModeLabels, Histogram, fn() -> Histogram>,
    pub file_cost: Family<CostLabels, Histogram, fn() -> Histogram>,
    /// Versions judged by the evaluation gate, by verdict (the label is named `reason`).
    pub gate_verdicts: Family<ReasonLabels, Counter>,
    pub file_bytes: Counter,
    pub file_pages: Counter,
    pub file_tokens: Counter,
    /// 1, labelled with this node's id and role.
    pub node_info: Family<NodeLabels, Gauge>,
    /// The newest version this node's indexes hold.
    pub applied_version: Gauge,
    /// Files this node holds claims on.
    pub claimed_files: Gauge,
    /// Nodes working on the pipeline's catalog, by role and liveness.
    pub cluster_nodes: Family<ClusterLabels, Gauge>,
}

impl Metrics {
    pub fn new() -> Self {
        let mut registry = Registry::with_prefix("sluice");
        let documents = Family::<OutcomeLabels, Counter>::default();
        registry.register("documents", "Documents processed, by outcome", documents.clone());
        let quarantined = Family::<ReasonLabels, Counter>::default();
        registry.register("quarantined_documents", "Documents quarantined, by reason", quarantined.clone());
        let chunks_written = Counter::default();
        registry.register("chunks_written", "Chunks written to the indexes", chunks_written.clone());
        let embeddings_computed = Counter::default();
        registry.register("embeddings_computed", "Chunk vectors computed by the model", embeddings_computed.clone());
        let embedding_cache_hits = Counter::default();
        registry.register(
            "embedding_cache_hits",
            "Chunk vectors served from the embedding cache",
            embedding_cache_hits.clone(),
        );
        let stage_duration: Family<StageLabels, Histogram, fn() -> Histogram> =
            Family::new_with_constructor(duration_histogram);
        registry.register(
            "stage_duration_seconds",
            "Wall time per document (per batch for embed, dedup and write) in each pipeline stage",
            stage_duration.clone(),
        );
        let runs = Family::<OutcomeLabels, Counter>::default();
        registry.register("runs", "Pipeline runs, by outcome (committed, unchanged, failed)", runs.clone());
        let live_version = Gauge::default();
        registry.register("live_version", "Dataset version the live alias points at", live_version.clone());
        let search_duration: Family<ModeLabels, Histogram, fn() -> Histogram> =
            Family::new_with_constructor(duration_histogram);
        registry.register("search_duration_seconds", "Search latency, by mode", search_duration.clone());
        let file_cost: Family<CostLabels, Histogram, fn() -> Histogram> =
            Family::new_with_constructor(duration_histogram);
        registry.register(
            "file_stage_seconds",
            "Seconds of wall, CPU or GPU time one file (with its embedded files) cost in a stage; batch stages \
             are shared among their files (what `sluice report` sums)",
            file_cost.clone(),
        );
        let gate_verdicts = Family::<ReasonLabels, Counter>::default();
        registry.register(
            "gate_verdicts",
            "Versions judged by the evaluation gate, by verdict (passed, held, reported)",
            gate_verdicts.clone(),
        );
        let file_bytes = Counter::default();
        registry.register("processed_bytes", "Bytes of the files processed", file_bytes.clone());
        let file_pages = Counter::default();
        registry.register("processed_pages", "Pages of the files processed", file_pages.clone());
        let file_tokens = Counter::default();
        registry.register("indexed_tokens", "Tokens of the chunks written", file_tokens.clone());
        let node_info = Family::<NodeLabels, Gauge>::default();
        registry.register("node_info", "This process as a node of its catalog (value 1)", node_info.clone());
        let applied_version = Gauge::default();
        registry.register(
            "node_applied_version",
            "Newest dataset version this node's indexes hold",
            applied_version.clone(),
        );
        let claimed_files = Gauge::default();
        registry.register("node_claimed_files", "Source files this node holds claims on", claimed_files.clone());
        let cluster_nodes = Family::<ClusterLabels, Gauge>::default();
        registry.register(
            "cluster_nodes",
            "Nodes working on the pipeline's catalog, by role and whether their heartbeat is recent",
            cluster_nodes.clone(),
        );
        Self {
            registry,
            documents,
            quarantined,
            chunks_written,
            embeddings_computed,
            embedding_cache_hits,
            stage_duration,
            runs,
            live_version,
            search_duration,
            file_cost,
            gate_verdicts,
            file_bytes,
            file_pages,
            file_tokens,
            node_info,
            applied_version,
            claimed_files,
            cluster_nodes,
        }
    }

    /// Sets the node gauges from the catalog's list of nodes (`this` is this node's id).
    pub fn record_nodes(&self, this: &str, applied: i64, nodes: &[sluice_store::NodeStatus]) {
        self.applied_version.set(applied);
        for role in [sluice_store::NodeRole::Writer, sluice_store::NodeRole::Query] {
            for alive in [true, false] {
                let count = nodes.iter().filter(|node| node.node.role == role && node.alive == alive).count();
                let labels = ClusterLabels { role: role.as_str(), alive: if alive { "true" } else { "false" } };
                self.cluster_nodes.get_or_create(&labels).set(count as i64);
            }
        }
        if let Some(me) = nodes.iter().find(|node| node.node.id == this) {
            self.claimed_files.set(me.claims as i64);
            self.node_info.get_or_create(&NodeLabels { node: this.to_owned(), role: me.node.role.as_str() }).set(1);
        }
    }

    /// The Prometheus text exposition.
    pub fn encode(&self) -> String {
        let mut text = String::new();
        prometheus_client::encoding::text::encode(&mut text, &self.registry).expect("writing to a String cannot fail");
        text
    }
}

impl Observer for Metrics {
    fn document(&self, outcome: Outcome<'_>) {
        let label = match outcome {
            Outcome::Indexed { chunks } => {
                self.chunks_written.inc_by(chunks as u64);
                "indexed"
            }
            Outcome::Duplicate => "duplicate",
            Outcome::Quarantined { reason } => {
                self.quarantined.get_or_create(&ReasonLabels { reason: reason.to_owned() }).inc();
                "quarantined"
            }
            Outcome::Deleted => "deleted",
            Outcome::Requeued => "requeued",
        };
        self.documents.get_or_create(&OutcomeLabels { outcome: label }).inc();
    }

    fn embedded(&self, outcome: Outcome<'_>) {
        self.document(outcome);
    }

    fn stage(&self, stage: Stage, seconds: f64) {
        self.stage_duration.get_or_create(&StageLabels { stage: stage.as_str() }).observe(seconds);
    }

    fn embeddings(&self, computed: usize, cache_hits: usize) {
        self.embeddings_computed.inc_by(computed as u64);
        self.embedding_cache_hits.inc_by(cache_hits as u64);
    }

    fn cost(&self, cost: &DocumentCost) {
        self.file_bytes.inc_by(cost.bytes);
        self.file_pages.inc_by(cost.pages);
        self.file_tokens.inc_by(cost.tokens);
        for (stage, spent) in &cost.stages {
            for (resource, seconds) in [("wall", spent.wall), ("cpu", spent.cpu), ("gpu", spent.gpu)] {
                self.file_cost.get_or_create(&CostLabels { stage, resource }).observe(seconds);
            }
        }
    }
}
