//! A daemon is a node of its catalog while it runs: `GET /v1/nodes` and `sluice nodes` list it
//! with its role, applied version and heartbeat; it leaves when it stops cleanly, and a killed
//! one stays listed as silent.

use std::time::Duration;

use serde_json::Value;

use crate::support::{Workspace, hit_ids, wait_for};

#[test]
fn a_daemon_is_listed_as_a_node_while_it_runs_and_leaves_when_it_stops() {
    let workspace = Workspace::new();
    let inbox = workspace.folder("inbox");
    std::fs::write(inbox.join("a.txt"), "Every node reports the version its indexes hold.\n").unwrap();
    let pipeline = workspace.pipeline("default", &[&inbox], "");
    let pipeline_arg = pipeline.to_str().unwrap();
    let daemon = workspace.start_daemon(&pipeline);
    let live = wait_for(Duration::from_secs(120), || daemon.live_version()).expect("version 1 goes live");
    // The heartbeat reports the version the node's indexes hold.
    let node = wait_for(Duration::from_secs(20), || {
        let (status, body) = daemon.get("/v1/nodes");
        assert_eq!(status, 200, "{body}");
        let nodes: Value = serde_json::from_str::<Value>(&body).unwrap()["nodes"].clone();
        assert_eq!(nodes.as_array().unwrap().len(), 1, "{nodes}");
        (nodes[0]["applied_version"] == live).then(|| nodes[0].clone())
    })
    .expect("the heartbeat reports the live version");
    assert_eq!((node["role"].as_str(), node["alive"].as_bool()), (Some("writer"), Some(true)), "{node}");
    assert_eq!(node["pid"], daemon.pid());
    // Its metrics say the same, per node.
    let metrics = wait_for(Duration::from_secs(20), || {
        let (_, text) = daemon.get("/metrics");
        (daemon.metric("sluice_node_applied_version") == live as f64).then_some(text)
    })
    .expect("the node metrics report the applied version");
    let info = format!("sluice_node_info{{node=\"{}\",role=\"writer\"}} 1", node["id"].as_str().unwrap());
    assert!(metrics.contains(&info), "{metrics}");
    assert!(metrics.contains("sluice_cluster_nodes{role=\"writer\",alive=\"true\"} 1"), "{metrics}");
    // A reader may not list the nodes.
    let output = workspace.run(&["token", "create", "--user", "rita", "--role", "reader"]);
    let reader = String::from_utf8(output.stdout).unwrap().trim().to_owned();
    let (status, _) = daemon.call("GET", "/v1/nodes", Some(&reader), None);
    assert_eq!(status, 403);
    // The command line reads the same from the catalog, beside the daemon.
    let listed = workspace.json(&["nodes", "--pipeline", pipeline_arg]);
    assert_eq!(listed[0]["id"], node["id"]);
    daemon.stop();
    let listed = workspace.json(&["nodes", "--pipeline", pipeline_arg]);
    assert_eq!(listed.as_array().map(Vec::len), Some(0), "a node that stops cleanly leaves: {listed}");

    // A killed node stays, and shows as silent once its heartbeat is old.
    let daemon = workspace.start_daemon(&pipeline);
    wait_for(Duration::from_secs(60), || daemon.get("/healthz").0.eq(&200).then_some(())).expect("healthy");
    daemon.kill_9();
    let listed = workspace.json(&["nodes", "--pipeline", pipeline_arg]);
    assert_eq!(listed.as_array().map(Vec::len), Some(1), "{listed}");
}

/// A query node (`sluice serve`) started after a writer catches up from empty, then follows:
/// its search at each version returns what the writer's returns. Needs a PostgreSQL catalog.
#[test]
fn a_query_node_catches_up_from_empty_and_answers_as_the_writer_does() {
    if !crate::support::postgres_catalog() {
        eprintln!("SKIPPED: a query node needs a shared catalog (SLUICE_TEST_POSTGRES_URL)");
        return;
    }
    let workspace = Workspace::new();
    let inbox = workspace.folder("inbox");
    for (name, text) in [
        ("lighthouse.txt", "The lighthouse keeper trims the lamp wick and logs passing ships at dusk."),
        ("orchard.txt", "Apple trees in the orchard are pruned in late winter before the buds swell."),
        ("glacier.txt", "The glacier retreats a few metres each summer, leaving moraines of grey gravel."),
    ] {
        std::fs::write(inbox.join(name), format!("{text}\n")).unwrap();
    }
    let pipeline = workspace.pipeline("default", &[&inbox], "");
    let writer = workspace.start_daemon(&pipeline);
    wait_for(Duration::from_secs(120), || (writer.live_version()? >= 1).then_some(())).expect("version 1 goes live");
    let query = workspace.start_node(&workspace.path("query-data"), "serve", &pipeline, &[]);
    let same_answers = |version: i64| {
        for question in ["who keeps the lamp", "pruning fruit trees", "ice that melts", "grey gravel"] {
            let extra = format!("&version={version}&k=3");
            let (mine, theirs) = (writer.search(question, &extra), query.search(question, &extra));
            assert_eq!(mine["version"], version);
            assert_eq!(hit_ids(&theirs), hit_ids(&mine), "{question} at version {version}");
            assert!(!hit_ids(&mine).is_empty(), "{question}");
        }
    };
    same_answers(1);
    // A version written after the query node started reaches it too.
    std::fs::write(inbox.join("harbour.txt"), "Tugboats guide the container ship through the harbour entrance.\n")
        .unwrap();
    wait_for(Duration::from_secs(120), || (writer.live_version()? >= 2).then_some(())).expect("version 2 goes live");
    same_answers(2);
    let roles: Vec<String> = serde_json::from_str::<Value>(&query.get("/v1/nodes").1).unwrap()["nodes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|node| node["role"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(roles, ["writer", "query"]);
    query.stop();
    writer.stop();
}
