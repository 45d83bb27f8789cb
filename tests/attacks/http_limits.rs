//! Hostile clients: slowloris connections, a flood of large searches, searches during a run,
//! and malformed requests. The daemon keeps serving everyone else, answers every rejection as
//! `application/problem+json`, and audits every search it answers.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use crate::common::{wait_found, wait_live};
use crate::support::{Daemon, Workspace, wait_for};

const SETTLE: Duration = Duration::from_secs(300);

/// A reader token for `user`.
fn reader_token(workspace: &Workspace, user: &str) -> String {
    let output = workspace.run(&["token", "create", "--user", user, "--role", "reader"]);
    String::from_utf8(output.stdout).unwrap().trim().to_owned()
}

/// Search entries in the audit log made by `principal`, read page by page.
fn audited_searches(daemon: &Daemon, principal: &str) -> usize {
    let (mut after, mut count) = (0, 0);
    loop {
        let page = daemon.get_json(&format!("/v1/audit?after={after}&limit=10000"));
        let entries = page["entries"].as_array().unwrap();
        let Some(last) = entries.last() else { return count };
        after = last["seq"].as_i64().unwrap();
        count += entries.iter().filter(|e| e["action"] == "search" && e["principal"] == principal).count();
    }
}

fn status_and_type(daemon: &Daemon, path: &str, token: Option<&str>) -> (u16, String, serde_json::Value) {
    let url = format!("http://{}{path}", daemon.address);
    let mut request = ureq::get(&url);
    if let Some(token) = token {
        request = request.header("Authorization", &format!("Bearer {token}"));
    }
    let mut response = request.config().http_status_as_error(false).build().call().unwrap();
    let content_type =
        response.headers().get("content-type").map(|v| v.to_str().unwrap().to_owned()).unwrap_or_default();
    let body = response.body_mut().read_to_string().unwrap();
    (response.status().as_u16(), content_type, serde_json::from_str(&body).unwrap_or(serde_json::Value::Null))
}

#[test]
fn slowloris_connections_are_cut_and_others_are_served() {
    let workspace = Workspace::new();
    let inbox = workspace.folder("inbox");
    let server = "max_connections = 64\nheader_timeout_secs = 2\n";
    let pipeline = workspace.pipeline_with("default", &[&inbox], server, "");
    let daemon = workspace.start_daemon(&pipeline);

    // 48 connections, each sending its request head one byte a second and never finishing it.
    let started = Instant::now();
    let mut slow: Vec<TcpStream> = (0..48).map(|_| TcpStream::connect(&daemon.address).unwrap()).collect();
    for (tick, byte) in b"GET /healthz HTTP/1.1\r\nHost: x\r\n".iter().enumerate().take(4) {
        for stream in &mut slow {
            let _ = stream.write_all(&[*byte]);
        }
        // Meanwhile a well-behaved client is served at once.
        let asked = Instant::now();
        let health = daemon.get_json("/healthz");
        assert_eq!(health["status"], "ok");
        assert!(
            asked.elapsed() < Duration::from_secs(2),
            "a normal request waited {:?} (tick {tick})",
            asked.elapsed()
        );
        std::thread::sleep(Duration::from_secs(1));
    }
    // Every slow connection is closed by the server once its head is overdue.
    for stream in &mut slow {
        stream.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        let mut buffer = [0u8; 512];
        let closed = match stream.read(&mut buffer) {
            Ok(_) => true, // a 408 answer, or the end of the stream: the server hung up
            Err(err) => matches!(err.kind(), std::io::ErrorKind::ConnectionReset | std::io::ErrorKind::BrokenPipe),
        };
        assert!(closed, "a slowloris connection was still open after {:?}", started.elapsed());
    }
    assert!(started.elapsed() < Duration::from_secs(20));
    assert_eq!(daemon.get_json("/healthz")["status"], "ok");
    daemon.stop();
}

#[test]
fn five_hundred_parallel_searches_with_k_1000_are_bounded() {
    let workspace = Workspace::new();
    let inbox = workspace.folder("inbox");
    for i in 0..60 {
        let text = format!("Report {i} on harbour dredging, silt volumes and the tide gauge at pier {i}.\n").repeat(40);
        std::fs::write(inbox.join(format!("report-{i:02}.txt")), text).unwrap();
    }
    let pipeline = workspace.pipeline("default", &[&inbox], "");
    let daemon = workspace.start_daemon(&pipeline);
    // The 60 reports score alike for any query about them: wait for their version, not a hit.
    wait_live(&daemon, 1, SETTLE);
    let token = reader_token(&workspace, "flooder");

    let address = daemon.address.clone();
    let threads: Vec<_> = (0..500)
        .map(|i| {
            let (address, token) = (address.clone(), token.clone());
            std::thread::spawn(move || {
                let url = format!("http://{address}/v1/search?q=silt+volumes+pier+{i}&k=1000");
                let mut response = ureq::get(&url)
                    .header("Authorization", &format!("Bearer {token}"))
                    .config()
                    .http_status_as_error(false)
                    .timeout_global(Some(Duration::from_secs(120)))
                    .build()
                    .call()
                    .unwrap();
                let status = response.status().as_u16();
                let content_type = response.headers().get("content-type").map(|v| v.to_str().unwrap().to_owned());
                let _ = response.body_mut().read_to_string();
                (status, content_type)
            })
        })
        .collect();
    let outcomes: Vec<(u16, Option<String>)> = threads.into_iter().map(|thread| thread.join().unwrap()).collect();
    let served = outcomes.iter().filter(|(status, _)| *status == 200).count();
    let limited = outcomes.iter().filter(|(status, _)| *status == 429).count();
    eprintln!("500 searches with k=1000: {served} served, {limited} refused with 429");
    assert_eq!(served + limited, 500, "{outcomes:?}");
    assert!(served >= 16, "the token's own share was not served");
    for (status, content_type) in &outcomes {
        if *status == 429 {
            assert_eq!(content_type.as_deref(), Some("application/problem+json"));
        }
    }
    assert!(daemon.peak_rss_bytes() < 1536 << 20, "{} MiB", daemon.peak_rss_bytes() >> 20);
    // Every search served was audited.
    wait_for(Duration::from_secs(10), || {
        let entries = daemon.get_json("/v1/audit?limit=10000");
        let searches = entries["entries"].as_array().unwrap().iter().filter(|e| e["principal"] == "flooder").count();
        (searches == served).then_some(())
    })
    .expect("every served search is in the audit log");
    assert_eq!(daemon.search("harbour dredging", "&k=3")["hits"].as_array().unwrap().len(), 3);
    daemon.stop();
}

#[test]
fn searches_during_a_run_are_answered_and_every_one_is_audited() {
    let workspace = Workspace::new();
    let inbox = workspace.folder("inbox");
    std::fs::write(inbox.join("first.txt"), "The first document describes a copper mine.\n").unwrap();
    let pipeline = workspace.pipeline("default", &[&inbox], "");
    let daemon = workspace.start_daemon(&pipeline);
    wait_live(&daemon, 1, SETTLE);
    let token = reader_token(&workspace, "searcher");

    // A run of a few hundred documents, and four clients searching all through it.
    for i in 0..300 {
        let text =
            format!("Field notes {i}: the copper seam at level {i} runs north by {} metres.\n", i * 3).repeat(12);
        std::fs::write(inbox.join(format!("notes-{i:03}.txt")), text).unwrap();
    }
    let done = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let clients: Vec<_> = (0..4)
        .map(|c| {
            let (address, token, done) = (daemon.address.clone(), token.clone(), done.clone());
            std::thread::spawn(move || {
                let mut outcomes = Vec::new();
                let mut i = 0;
                while !done.load(std::sync::atomic::Ordering::SeqCst) {
                    let url = format!("http://{address}/v1/search?q=copper+seam+level+{i}&k=20&mode=lexical");
                    let asked = Instant::now();
                    let response = ureq::get(&url)
                        .header("Authorization", &format!("Bearer {token}"))
                        .config()
                        .http_status_as_error(false)
                        .build()
                        .call();
                    outcomes.push((response.map(|r| r.status().as_u16()).unwrap_or(0), asked.elapsed(), c));
                    i += 1;
                }
                outcomes
            })
        })
        .collect();
    wait_found(&daemon, "copper seam level 299", "notes-299.txt", SETTLE);
    done.store(true, std::sync::atomic::Ordering::SeqCst);
    let outcomes: Vec<_> = clients.into_iter().flat_map(|client| client.join().unwrap()).collect();
    let served = outcomes.iter().filter(|(status, _, _)| *status == 200).count();
    assert!(
        outcomes.iter().all(|(status, _, _)| *status == 200),
        "{:?}",
        outcomes.iter().filter(|o| o.0 != 200).collect::<Vec<_>>()
    );
    let mut latencies: Vec<Duration> = outcomes.iter().map(|(_, latency, _)| *latency).collect();
    latencies.sort();
    eprintln!(
        "{served} searches during the run; p50 {:?}, p95 {:?}",
        latencies[latencies.len() / 2],
        latencies[latencies.len() * 95 / 100]
    );
    wait_for(Duration::from_secs(10), || (audited_searches(&daemon, "searcher") == served).then_some(()))
        .unwrap_or_else(|| panic!("{served} searches answered, {} audited", audited_searches(&daemon, "searcher")));
    let verify = daemon.get_json("/v1/audit/verify");
    assert!(verify["first_bad"].is_null(), "{verify}");
    daemon.stop();
}

#[test]
fn every_rejection_is_a_problem_document_without_internals() {
    let workspace = Workspace::new();
    let inbox = workspace.folder("inbox");
    std::fs::write(inbox.join("a.txt"), "Something to search for: kettle drums.\n").unwrap();
    let pipeline = workspace.pipeline("default", &[&inbox], "");
    let daemon = workspace.start_daemon(&pipeline);
    wait_live(&daemon, 1, SETTLE);
    let token = daemon.token.clone();
    let long_query = "a".repeat(30_000);
    let cases: Vec<(String, u16)> = vec![
        ("/v1/search?q=kettle&k=abc".into(), 400),
        ("/v1/search?q=kettle&k=5000".into(), 400),
        ("/v1/search?q=kettle&version=x".into(), 400),
        ("/v1/search?q=kettle&version=99".into(), 404),
        ("/v1/search".into(), 400),
        (format!("/v1/search?q={}", "a".repeat(3000)), 400),
        (format!("/v1/search?q={long_query}"), 414),
        ("/v1/versions/abc".into(), 400),
        ("/v1/nothing-here".into(), 404),
        ("/v1/chunks/xyz/lineage".into(), 400),
    ];
    for (path, expected) in &cases {
        let (status, content_type, problem) = status_and_type(&daemon, path, Some(&token));
        assert_eq!(status, *expected, "{path}: {problem}");
        assert_eq!(content_type, "application/problem+json", "{path}");
        for field in ["type", "title", "status", "detail", "request_id"] {
            assert!(!problem[field].is_null(), "{path}: no {field} in {problem}");
        }
        assert_eq!(problem["status"], *expected);
        let detail = problem["detail"].as_str().unwrap();
        assert!(!detail.contains(&workspace.data().display().to_string()) && !detail.contains("SQL"), "{detail}");
    }
    // Wrong method, missing token, a body over the limit.
    let (status, _, problem) = {
        let url = format!("http://{}/v1/versions", daemon.address);
        let mut response = ureq::post(&url)
            .header("Authorization", &format!("Bearer {token}"))
            .config()
            .http_status_as_error(false)
            .build()
            .send_empty()
            .unwrap();
        let status = response.status().as_u16();
        let body = response.body_mut().read_to_string().unwrap();
        (status, (), serde_json::from_str::<serde_json::Value>(&body).unwrap())
    };
    assert_eq!((status, problem["status"].as_u64()), (405, Some(405)));
    assert_eq!(status_and_type(&daemon, "/v1/versions", None).0, 401);
    let big = serde_json::json!({"path": "x".repeat(200_000)});
    let (status, body) = daemon.call("POST", "/v1/quarantine/retry", Some(&token), Some(big));
    assert_eq!(status, 413, "{body}");
    assert!(body.contains("\"status\":413"), "{body}");
    daemon.stop();
}
