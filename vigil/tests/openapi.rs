//! `docs/openapi.yaml` covers every HTTP route Vigil serves, and only those.
//!
//! Statically: every `.route(path, method(…)…)` in the crates' sources (outside tests) must be an operation
//! of the file, and every operation of the file must be registered — except paths marked
//! `x-vigil-planned: true` (documented in issue 6, not served yet), which must *not* be registered, so the
//! marker goes when the route comes. Live: a running Vigil answers every documented operation with something
//! other than axum's 404/405, and planned paths with 404.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use bytes::Bytes;
use support::*;

type Operation = (String, String);

const METHODS: [&str; 7] = ["get", "post", "put", "delete", "patch", "head", "options"];

/// Routes whose path is not a literal: (file, argument) → the path it has by default. The live test checks
/// these defaults are what Vigil serves.
const CONFIGURED_PATHS: [(&str, &str, &str); 2] = [
    ("ingest/src/remote_write/handler.rs", "&path", "/api/v1/write"),
    ("ingest/src/loki/handler.rs", "&path", "/loki/api/v1/push"),
];

fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap().to_path_buf()
}

/// The file's operations, each with whether its path is planned.
fn documented() -> BTreeMap<Operation, bool> {
    let text = std::fs::read_to_string(workspace().join("docs/openapi.yaml")).unwrap();
    let doc: serde_yaml_ng::Value = serde_yaml_ng::from_str(&text).unwrap();
    let paths = doc["paths"].as_mapping().expect("paths");
    let mut out = BTreeMap::new();
    for (path, item) in paths {
        let path = path.as_str().unwrap().to_owned();
        let planned = item["x-vigil-planned"].as_bool().unwrap_or(false);
        for m in METHODS {
            if !item[m].is_null() {
                out.insert((m.to_uppercase(), path.clone()), planned);
            }
        }
    }
    assert!(out.len() > 20, "the file lists every endpoint: {out:?}");
    out
}

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            if path.file_name().is_some_and(|n| n != "tests") {
                rust_files(&path, out);
            }
        } else if path.extension().is_some_and(|e| e == "rs") && path.file_name().is_some_and(|n| n != "tests.rs") {
            out.push(path);
        }
    }
}

/// The text of a call's arguments: from just after `(` to its matching `)`, skipping string literals.
fn call_args(text: &str) -> &str {
    let (mut depth, mut in_str, mut escaped) = (1, false, false);
    for (i, c) in text.char_indices() {
        match (in_str, c) {
            (true, '\\') if !escaped => escaped = true,
            (true, '"') if !escaped => in_str = false,
            (true, _) => escaped = false,
            (false, '"') => in_str = true,
            (false, '(') => depth += 1,
            (false, ')') => {
                depth -= 1;
                if depth == 0 {
                    return &text[..i];
                }
            }
            _ => {}
        }
    }
    panic!("unbalanced call: {text}")
}

/// The HTTP methods of a method router expression like `get(a).post(b)`.
fn methods_of(expr: &str) -> Vec<String> {
    let mut out = Vec::new();
    for m in METHODS.iter().chain(&["any"]) {
        let mut from = 0;
        while let Some(at) = expr[from..].find(&format!("{m}(")) {
            let at = from + at;
            let before = expr[..at].chars().next_back();
            if before.is_none_or(|c| c == '.' || c.is_whitespace()) {
                out.push(m.to_uppercase());
            }
            from = at + m.len();
        }
    }
    out
}

/// Every (method, path) registered with `.route(…)` in the workspace's crates, outside tests.
fn registered() -> BTreeSet<Operation> {
    let root = workspace();
    let mut files = Vec::new();
    for krate in ["proto", "ingest", "forward", "detect", "query", "vigil"] {
        rust_files(&root.join(krate).join("src"), &mut files);
    }
    let mut out = BTreeSet::new();
    for file in files {
        let rel = file.strip_prefix(&root).unwrap().to_string_lossy().replace('\\', "/");
        let full = std::fs::read_to_string(&file).unwrap();
        let text = full.split("#[cfg(test)]").next().unwrap();
        for unhandled in [".nest(", ".nest_service(", ".route_service(", ".fallback("] {
            assert!(!text.contains(unhandled), "{rel} uses {unhandled}: teach this test to read it");
        }
        let mut rest = text;
        while let Some(at) = rest.find(".route(") {
            let args = call_args(&rest[at + ".route(".len()..]);
            let (path_arg, method_expr) = args.split_once(',').unwrap();
            let path_arg = path_arg.trim();
            let path = if let Some(literal) = path_arg.strip_prefix('"') {
                literal.trim_end_matches('"').to_owned()
            } else {
                let known = CONFIGURED_PATHS.iter().find(|(f, a, _)| *f == rel && *a == path_arg);
                known
                    .unwrap_or_else(|| {
                        panic!("{rel}: route path {path_arg:?} is not a literal; add its default to CONFIGURED_PATHS")
                    })
                    .2
                    .to_owned()
            };
            let methods = methods_of(method_expr);
            assert!(!methods.is_empty(), "{rel}: no method in {method_expr:?}");
            for m in methods {
                out.insert((m, path.clone()));
            }
            rest = &rest[at + ".route(".len()..];
        }
    }
    out
}

#[test]
fn every_registered_route_is_documented_and_every_documented_one_registered() {
    let documented = documented();
    let registered = registered();
    let served: BTreeSet<&Operation> = documented.iter().filter(|(_, planned)| !**planned).map(|(op, _)| op).collect();
    let undocumented: Vec<&Operation> = registered.iter().filter(|op| !documented.contains_key(*op)).collect();
    assert!(undocumented.is_empty(), "registered but missing from docs/openapi.yaml: {undocumented:?}");
    let unserved: Vec<&&Operation> = served.iter().filter(|op| !registered.contains(**op)).collect();
    assert!(unserved.is_empty(), "in docs/openapi.yaml but not registered (mark it x-vigil-planned?): {unserved:?}");
    let landed: Vec<&Operation> =
        documented.iter().filter(|(op, planned)| **planned && registered.contains(*op)).map(|(op, _)| op).collect();
    assert!(landed.is_empty(), "served now: remove x-vigil-planned from {landed:?}");
    // The scan itself finds what it should.
    for op in
        [("POST", "/api/v1/write"), ("GET", "/api/v1/query"), ("POST", "/api/v1/query_range"), ("GET", "/health/live")]
    {
        assert!(registered.contains(&(op.0.to_owned(), op.1.to_owned())), "{op:?} in {registered:?}");
    }
}

#[test]
fn the_scanner_reads_method_routers() {
    assert_eq!(methods_of(" get(query).post(query)"), ["GET", "POST"]);
    assert_eq!(methods_of(" post(forget_it)"), ["POST"]);
    assert_eq!(methods_of(r#" get(|| async { "ok\n" })"#), ["GET"]);
    assert_eq!(call_args(r#""/a(", get(f(x))) trailing"#), r#""/a(", get(f(x))"#);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_running_vigil_answers_every_documented_operation() {
    let dir = TempDir::new("openapi");
    let vigil = Vigil::start(&dir.0, &[]).await;
    for ((method, path), planned) in documented() {
        let concrete = path.replace("{name}", "job").replace("{id}", "x").replace("{trace_id}", &"0".repeat(32));
        let r = request(&method, &vigil.url(&concrete), &[], Bytes::new()).await.unwrap();
        // axum answers an unknown path with an empty 404 and a known path's unknown method with 405.
        let not_routed = (r.status == 404 && r.body.is_empty()) || r.status == 405;
        if planned {
            assert!(not_routed, "{method} {path} is served now ({}): remove x-vigil-planned", r.status);
        } else {
            assert!(!not_routed, "{method} {path} documented but not served: {} {}", r.status, r.text());
        }
    }
}
