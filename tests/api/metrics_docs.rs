//! The metrics' documentation and the shipped dashboard and alert rules
//! (docs/operations.md, docs/monitoring/) checked against the catalogue.
//!
//! `pinkpage_actors::metrics::CATALOGUE` is the one list of metric
//! families; these tests keep everything an operator is handed in step
//! with it, without a daemon:
//! - docs/operations.md's metrics table lists every family, with its type,
//!   labels and when it is measured, and nothing else; its alert table
//!   names every alert rule, and nothing else;
//! - the dashboard's queries and the alert rules' expressions name only
//!   catalogued families (a histogram's `_bucket`, `_sum` and `_count`
//!   too): a renamed metric fails here, not as an empty panel or an alert
//!   that can never fire;
//! - promtool accepts the alert rules, and every dashboard query as
//!   PromQL, where it is installed (`scripts/test-env.sh` installs it);
//!   elsewhere that test says it was skipped.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::Command;

use pinkpage_actors::metrics::{Kind, CATALOGUE};

const OPERATIONS: &str = "docs/operations.md";
const DASHBOARD: &str = "docs/monitoring/pinkpage-dashboard.json";
const ALERTS: &str = "docs/monitoring/pinkpage-alerts.yml";

#[test]
fn every_catalogued_metric_is_in_the_operations_table_and_no_other() {
    let doc = read(OPERATIONS);
    let rows = metric_rows(&doc);
    let documented: Vec<&str> = rows.iter().map(|r| r.name.as_str()).collect();

    for m in CATALOGUE {
        assert!(
            documented.contains(&m.name),
            "{OPERATIONS}: the metrics table has no row for `{}`",
            m.name
        );
    }
    let mut seen = BTreeSet::new();
    for row in &rows {
        assert!(
            seen.insert(&row.name),
            "{OPERATIONS}: `{}` has two rows",
            row.name
        );
        let Some(m) = CATALOGUE.iter().find(|m| m.name == row.name) else {
            panic!("{OPERATIONS}: `{}` is not in the metrics catalogue", row.name);
        };
        assert_eq!(
            row.kind,
            m.kind.as_str(),
            "{OPERATIONS}: the type of `{}`",
            m.name
        );
        assert_eq!(row.labels, m.labels, "{OPERATIONS}: the labels of `{}`", m.name);
        let measured = if m.at_scrape { "at scrape" } else { "as it happens" };
        assert_eq!(
            row.measured, measured,
            "{OPERATIONS}: when `{}` is measured",
            m.name
        );
    }
}

#[test]
fn every_alert_rule_is_in_the_operations_alert_table_and_no_other() {
    let rules: BTreeSet<String> = read(ALERTS)
        .lines()
        .filter_map(|l| l.trim().strip_prefix("- alert:"))
        .map(|name| name.trim().to_owned())
        .collect();
    let documented: BTreeSet<String> = read(OPERATIONS)
        .lines()
        .filter_map(|l| l.strip_prefix("| `Pinkpage"))
        .filter_map(|rest| rest.split('`').next())
        .map(|rest| format!("Pinkpage{rest}"))
        .collect();
    assert!(!rules.is_empty(), "{ALERTS}: no alert rule found");
    assert_eq!(documented, rules, "{OPERATIONS}'s alert table against {ALERTS}");
}

#[test]
fn the_dashboard_and_the_alert_rules_use_only_catalogued_metrics() {
    let known = known_series();
    for (file, exprs) in [(DASHBOARD, dashboard_exprs()), (ALERTS, alert_exprs())] {
        assert!(!exprs.is_empty(), "{file}: no expression found");
        for expr in &exprs {
            for name in metric_names(expr) {
                assert!(
                    known.contains(name),
                    "{file}: `{name}` is not in the metrics catalogue (in `{expr}`)"
                );
            }
        }
    }
}

/// `promtool check rules` on the alert rules, and on every dashboard query
/// written as a recording rule (Grafana's variables replaced by values),
/// so a query that is not PromQL fails here rather than in a panel.
#[test]
fn promtool_accepts_the_alert_rules_and_the_dashboard_queries() {
    let Some(promtool) = which("promtool") else {
        eprintln!(
            "SKIPPED: promtool is not installed (scripts/test-env.sh installs Debian's prometheus package); \
             the alert rules and the dashboard queries were not checked"
        );
        return;
    };
    promtool_check_rules(&promtool, &repo_file(ALERTS));

    let mut rules = String::from("groups:\n  - name: pinkpage-dashboard\n    rules:\n");
    for (i, expr) in dashboard_exprs().iter().enumerate() {
        let promql = without_grafana_variables(expr);
        let quoted = serde_json::to_string(&promql).unwrap();
        rules.push_str(&format!(
            "      - record: pinkpage_dashboard:query{i}\n        expr: {quoted}\n"
        ));
    }
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("dashboard-queries.yml");
    std::fs::write(&path, rules).unwrap();
    promtool_check_rules(&promtool, &path);
}

#[test]
fn a_metric_name_is_taken_only_as_a_whole_identifier() {
    let expr = r#"rate(pinkpage_a_seconds_bucket{job="pinkpage"}[5m]) + xpinkpage_b + pinkpage_"#;
    assert_eq!(metric_names(expr), ["pinkpage_a_seconds_bucket"]);
}

/// One row of the metrics table.
struct MetricRow {
    name: String,
    kind: String,
    labels: Vec<String>,
    measured: String,
}

/// The rows whose first cell is `` `pinkpage_...` ``: name, type, labels,
/// when it is measured, meaning.
fn metric_rows(doc: &str) -> Vec<MetricRow> {
    doc.lines()
        .filter(|l| l.starts_with("| `pinkpage_"))
        .map(|line| {
            let cells: Vec<&str> = line.split('|').map(str::trim).collect();
            // a leading and a trailing empty cell around the five columns
            assert!(
                cells.len() >= 7,
                "{OPERATIONS}: a metrics row has fewer than 5 columns: {line}"
            );
            MetricRow {
                name: cells[1].trim_matches('`').to_owned(),
                kind: cells[2].to_owned(),
                labels: cells[3]
                    .split(',')
                    .map(|l| l.trim().trim_matches('`').to_owned())
                    .filter(|l| !l.is_empty())
                    .collect(),
                measured: cells[4].to_owned(),
            }
        })
        .collect()
}

/// Every series name a query may use: each family's name, and a
/// histogram's `_bucket`, `_sum` and `_count` series.
fn known_series() -> BTreeSet<String> {
    let mut known = BTreeSet::new();
    for m in CATALOGUE {
        known.insert(m.name.to_owned());
        if m.kind == Kind::Histogram {
            for suffix in ["_bucket", "_sum", "_count"] {
                known.insert(format!("{}{suffix}", m.name));
            }
        }
    }
    known
}

/// Every `pinkpage_[a-z0-9_]+` identifier in `expr` (Prometheus's own
/// series, such as `up`, are not ours to check).
fn metric_names(expr: &str) -> Vec<&str> {
    let is_ident = |c: char| c.is_ascii_alphanumeric() || c == '_' || c == ':';
    let mut names = Vec::new();
    for (start, _) in expr.match_indices("pinkpage_") {
        if expr[..start].chars().next_back().is_some_and(is_ident) {
            continue; // inside a longer identifier
        }
        let len = expr[start..]
            .find(|c: char| !(c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_'))
            .unwrap_or(expr.len() - start);
        if len > "pinkpage_".len() {
            names.push(&expr[start..start + len]);
        }
    }
    names
}

/// Every `"expr"` string of the dashboard, at any depth (panels, rows,
/// variables).
fn dashboard_exprs() -> Vec<String> {
    fn walk(value: &serde_json::Value, out: &mut Vec<String>) {
        match value {
            serde_json::Value::Object(map) => {
                for (key, v) in map {
                    match (key.as_str(), v) {
                        ("expr", serde_json::Value::String(expr)) => out.push(expr.clone()),
                        _ => walk(v, out),
                    }
                }
            }
            serde_json::Value::Array(items) => items.iter().for_each(|v| walk(v, out)),
            _ => {}
        }
    }
    let text = read(DASHBOARD);
    let dashboard: serde_json::Value =
        serde_json::from_str(&text).unwrap_or_else(|e| panic!("{DASHBOARD} is not JSON: {e}"));
    let mut exprs = Vec::new();
    walk(&dashboard, &mut exprs);
    exprs
}

/// Every `expr:` of the alert rules: the rest of its line, or the lines of
/// a block scalar (`expr: |`) indented below it.
fn alert_exprs() -> Vec<String> {
    let text = read(ALERTS);
    let lines: Vec<&str> = text.lines().collect();
    let mut exprs = Vec::new();
    for (i, line) in lines.iter().enumerate() {
        let Some(value) = line.trim_start().strip_prefix("expr:") else {
            continue;
        };
        let value = value.trim();
        if !value.starts_with(['|', '>']) {
            exprs.push(value.to_owned());
            continue;
        }
        let indent = line.len() - line.trim_start().len();
        let block: Vec<&str> = lines[i + 1..]
            .iter()
            .take_while(|l| l.trim().is_empty() || l.len() - l.trim_start().len() > indent)
            .map(|l| l.trim())
            .collect();
        exprs.push(block.join(" "));
    }
    exprs
}

/// A dashboard query as Prometheus reads it: Grafana's variables replaced
/// by values of the right shape.
fn without_grafana_variables(expr: &str) -> String {
    let promql = expr
        .replace("$__rate_interval", "5m")
        .replace("$__interval", "1m")
        .replace("$__range", "1h")
        .replace("$instance", ".*");
    assert!(
        !promql.contains('$'),
        "{DASHBOARD}: `{expr}` uses a variable this test does not know; give it a value in without_grafana_variables"
    );
    promql
}

fn promtool_check_rules(promtool: &Path, rules: &Path) {
    let out = Command::new(promtool)
        .arg("check")
        .arg("rules")
        .arg(rules)
        .output()
        .unwrap_or_else(|e| panic!("cannot run {}: {e}", promtool.display()));
    let said = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        out.status.success(),
        "promtool check rules {}:\n{said}",
        rules.display()
    );
}

fn repo_file(relative: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(relative)
}

fn read(relative: &str) -> String {
    let path = repo_file(relative);
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

fn which(name: &str) -> Option<PathBuf> {
    std::env::var_os("PATH")
        .iter()
        .flat_map(std::env::split_paths)
        .map(|dir| dir.join(name))
        .find(|p| p.is_file())
}
