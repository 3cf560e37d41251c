//! Layers point down: the import graph of `src/` and `actors/src/` read
//! from the code, held against the layers the architecture names
//! (docs/architecture.md, "Layers").
//!
//! - Each top-level module of a crate sits in one layer and may name only
//!   modules of lower layers (`crate::x` anywhere in its code).
//! - No two files import each other, directly or round a circle:
//!   `crate::`, `super::` and `self::` paths and paths through a child
//!   module a file declares are resolved to the file that defines them.
//!
//! Comments and test code (a `tests.rs`, a `*_tests.rs`, a test-only
//! fake, a trailing `#[cfg(test)] mod tests { .. }`) are left out: a test
//! may exercise layers together. A new module must be given its layer
//! here, so where it sits is a decision, not an accident.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// The daemon's layers, lowest first.
const DAEMON: &[&[&str]] = &[
    &[
        "settings",
        "systemd",
        "in_flight",
        "records",
        "text",
        "tls",
        "metrics",
    ],
    &["accounts", "logging", "request", "connections", "limits"],
    &["store"],
    &["journal", "auth"],
    &["reviews", "retention"],
    &["diff_jobs", "workflows", "terminals", "recordings"],
    &["state"],
    &["reload"],
    &["api"],
    &["ws"],
    &["admission", "console"],
    &["shutdown", "cli"],
    &["startup"],
];

/// The engine's layers, lowest first.
const ENGINE: &[&[&str]] = &[
    &["error", "secret", "ids", "access", "testing"],
    &["server", "task", "metrics"],
    &["ssh", "policy"],
    &["pty", "shell_mode", "health"],
    &["terminal", "broadcast"],
    &["files", "lock"],
    &["batch", "transfer"],
    &["diff", "workflow"],
];

/// Files that are test code wherever they stand.
fn is_test_file(path: &Path) -> bool {
    let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("");
    name == "tests.rs" || name.ends_with("_tests.rs") || name == "scripted.rs" || name == "fuzz.rs"
}

/// A file's code: comments and a trailing inline test module removed.
fn code_of(path: &Path) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let text = match text.find("#[cfg(test)]\nmod tests {") {
        Some(i) => &text[..i],
        None => &text[..],
    };
    text.lines()
        .map(|l| match l.find("//") {
            // a `//` inside a string is rare in paths; good enough here
            Some(i) => &l[..i],
            None => l,
        })
        .collect::<Vec<_>>()
        .join("\n")
}

/// Every `a::b::c` path in `code` (identifiers joined by `::`), with a
/// brace group's prefix kept as a path of its own.
fn paths(code: &str) -> Vec<Vec<String>> {
    let bytes = code.as_bytes();
    let is_ident = |b: u8| b.is_ascii_alphanumeric() || b == b'_';
    let mut out = Vec::new();
    let mut i = 0;
    while i < bytes.len() {
        if !is_ident(bytes[i]) || (i > 0 && (is_ident(bytes[i - 1]) || bytes[i - 1] == b':')) {
            i += 1;
            continue;
        }
        let mut segs = Vec::new();
        loop {
            let start = i;
            while i < bytes.len() && is_ident(bytes[i]) {
                i += 1;
            }
            segs.push(code[start..i].to_owned());
            if bytes.get(i..i + 2) == Some(b"::") && bytes.get(i + 2).is_some_and(|b| is_ident(*b)) {
                i += 2;
            } else {
                break;
            }
        }
        if segs.len() > 1 || bytes.get(i..i + 3) == Some(b"::{") {
            out.push(segs);
        }
    }
    out
}

/// The module path of a file under `root` (`store/sqlite/mod.rs` ->
/// `["store", "sqlite"]`).
fn module_of(root: &Path, file: &Path) -> Vec<String> {
    let rel = file.strip_prefix(root).unwrap();
    let mut segs: Vec<String> = rel
        .iter()
        .map(|s| s.to_string_lossy().trim_end_matches(".rs").to_owned())
        .collect();
    if segs.last().map(String::as_str) == Some("mod") {
        segs.pop();
    }
    segs
}

/// The file that defines module path `segs` under `root`, if any.
fn file_of(root: &Path, segs: &[String]) -> Option<PathBuf> {
    if segs.is_empty() {
        return None;
    }
    let joined: PathBuf = segs.iter().collect();
    let as_file = root.join(&joined).with_extension("rs");
    let as_dir = root.join(&joined).join("mod.rs");
    [as_file, as_dir].into_iter().find(|p| p.is_file())
}

/// The child modules a file declares (`mod x;` / `pub mod x;`).
fn children(code: &str) -> BTreeSet<String> {
    code.lines()
        .filter_map(|l| {
            let l = l.trim();
            let l = l.strip_prefix("pub ").unwrap_or(l);
            let l = l.strip_prefix("pub(crate) ").unwrap_or(l);
            l.strip_prefix("mod ")
                .and_then(|r| r.strip_suffix(';'))
                .map(str::to_owned)
        })
        .collect()
}

/// Every source file of a crate, test code left out.
fn files(root: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut dirs = vec![root.to_path_buf()];
    while let Some(dir) = dirs.pop() {
        for entry in std::fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                dirs.push(path);
            } else if path.extension().is_some_and(|e| e == "rs") && !is_test_file(&path) {
                out.push(path);
            }
        }
    }
    out.sort();
    out
}

/// The file edges of a crate: which file names which.
fn file_edges(root: &Path) -> BTreeMap<PathBuf, BTreeSet<PathBuf>> {
    let mut edges = BTreeMap::new();
    for file in files(root) {
        let code = code_of(&file);
        let here = module_of(root, &file);
        let own = children(&code);
        let mut to = BTreeSet::new();
        for path in paths(&code) {
            let absolute: Vec<String> = match path[0].as_str() {
                "crate" => path[1..].to_vec(),
                "super" => {
                    let mut base = here.clone();
                    let mut rest = &path[..];
                    while rest.first().map(String::as_str) == Some("super") {
                        base.pop();
                        rest = &rest[1..];
                    }
                    base.extend(rest.iter().cloned());
                    base
                }
                "self" => here.iter().chain(&path[1..]).cloned().collect(),
                first if own.contains(first) => here.iter().chain(&path[..]).cloned().collect(),
                _ => continue,
            };
            let found = (1..=absolute.len())
                .rev()
                .find_map(|n| file_of(root, &absolute[..n]));
            if let Some(target) = found.filter(|t| *t != file && !is_test_file(t)) {
                to.insert(target);
            }
        }
        edges.insert(file, to);
    }
    edges
}

/// A circle of files, if there is one.
fn find_circle(edges: &BTreeMap<PathBuf, BTreeSet<PathBuf>>) -> Option<Vec<PathBuf>> {
    fn visit(
        node: &PathBuf,
        edges: &BTreeMap<PathBuf, BTreeSet<PathBuf>>,
        state: &mut BTreeMap<PathBuf, u8>,
        stack: &mut Vec<PathBuf>,
    ) -> Option<Vec<PathBuf>> {
        state.insert(node.clone(), 1);
        stack.push(node.clone());
        for next in edges.get(node).into_iter().flatten() {
            match state.get(next).copied().unwrap_or(0) {
                1 => {
                    let at = stack.iter().position(|n| n == next).unwrap();
                    return Some(stack[at..].to_vec());
                }
                0 => {
                    if let Some(c) = visit(next, edges, state, stack) {
                        return Some(c);
                    }
                }
                _ => {}
            }
        }
        stack.pop();
        state.insert(node.clone(), 2);
        None
    }
    let mut state = BTreeMap::new();
    for node in edges.keys() {
        if state.get(node).copied().unwrap_or(0) == 0 {
            if let Some(c) = visit(node, edges, &mut state, &mut Vec::new()) {
                return Some(c);
            }
        }
    }
    None
}

/// Every import of `root` that is not strictly downward in `layers`.
fn upward(root: &Path, layers: &[&[&str]], edges: &BTreeMap<PathBuf, BTreeSet<PathBuf>>) -> Vec<String> {
    let layer = |module: &str| layers.iter().position(|l| l.contains(&module));
    let top = |file: &Path| module_of(root, file).into_iter().next().unwrap_or_default();
    let mut wrong = Vec::new();
    for (from, tos) in edges {
        let a = top(from);
        if a == "lib" || a == "main" {
            continue;
        }
        let Some(la) = layer(&a) else {
            wrong.push(format!(
                "{}: module '{a}' has no layer in tests/api/layers.rs",
                from.display()
            ));
            continue;
        };
        for to in tos {
            let b = top(to);
            if b == a || b == "lib" {
                continue;
            }
            match layer(&b) {
                Some(lb) if lb < la => {}
                _ => wrong.push(format!(
                    "{} -> {} ('{a}' may not name '{b}')",
                    from.display(),
                    to.display()
                )),
            }
        }
    }
    wrong
}

fn check(crate_root: &str, layers: &[&[&str]]) {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join(crate_root);
    let edges = file_edges(&root);
    assert!(edges.len() > 20, "read the crate at {}", root.display());
    let wrong = upward(&root, layers, &edges);
    assert!(
        wrong.is_empty(),
        "imports that do not point down:\n{}",
        wrong.join("\n")
    );
    if let Some(circle) = find_circle(&edges) {
        let names: Vec<String> = circle.iter().map(|p| p.display().to_string()).collect();
        panic!("files that import each other: {}", names.join(" -> "));
    }
}

#[test]
fn the_daemons_imports_point_down_and_form_no_circle() {
    check("src", DAEMON);
}

#[test]
fn the_engines_imports_point_down_and_form_no_circle() {
    check("actors/src", ENGINE);
}

#[test]
fn the_checker_sees_an_upward_import_and_a_circle() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    std::fs::create_dir_all(root.join("low")).unwrap();
    std::fs::write(root.join("low/mod.rs"), "mod a;\nuse crate::high::X;\n").unwrap();
    std::fs::write(root.join("low/a.rs"), "use super::Y;\n").unwrap();
    std::fs::write(root.join("high.rs"), "use crate::low::Z;\n").unwrap();
    let edges = file_edges(root);
    let wrong = upward(root, &[&["low"], &["high"]], &edges);
    assert_eq!(wrong.len(), 1, "{wrong:?}");
    assert!(wrong[0].contains("'low' may not name 'high'"), "{wrong:?}");
    let circle = find_circle(&edges).expect("low/mod.rs and high.rs name each other");
    assert!(circle.iter().any(|p| p.ends_with("high.rs")), "{circle:?}");
}
