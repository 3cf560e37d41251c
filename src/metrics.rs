//! The daemon's half of the metrics (the catalogue is the engine's,
//! `pinkpage_actors::metrics`): the Prometheus recorder that keeps the
//! counted series, and [`Exposition`], which writes the series read at
//! scrape time in the same text format. `GET /metrics` (`api::metrics`)
//! joins the two.
//!
//! Who owns what: the recorder is process-global (the `metrics` facade
//! has one slot), installed once by [`install`] and never replaced; its
//! counters are atomics, so the engine's actors and the HTTP workers move
//! them without a lock. The series read at scrape time are never stored
//! here: each scrape asks their owners, so nothing can go stale.

use std::fmt::Write as _;
use std::sync::OnceLock;

use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle};
use pinkpage_actors::metrics::{Kind, Metric, CATALOGUE};

/// Histogram buckets for durations, in seconds: from a millisecond (a
/// store write, a health check on loopback) to an hour (a lock held
/// through a long workflow).
const SECONDS_BUCKETS: &[f64] = &[
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0, 900.0,
    3600.0,
];

static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();

/// How often histogram samples are folded into their buckets when nobody
/// scrapes.
const UPKEEP_EVERY: std::time::Duration = std::time::Duration::from_secs(5);

/// Installs the Prometheus recorder as the process's recorder (once; later
/// calls return the same handle) and describes every counted series.
pub fn install() -> PrometheusHandle {
    HANDLE
        .get_or_init(|| {
            let recorder = PrometheusBuilder::new()
                .set_buckets(SECONDS_BUCKETS)
                .expect("the bucket list is not empty")
                .build_recorder();
            let handle = recorder.handle();
            // Histogram samples wait in the recorder until a scrape or an
            // upkeep drains them into their buckets; without a Prometheus
            // scraping, only the upkeep keeps them bounded.
            let upkeep = handle.clone();
            let spawned = std::thread::Builder::new()
                .name("metrics-upkeep".into())
                .spawn(move || loop {
                    std::thread::sleep(UPKEEP_EVERY);
                    upkeep.run_upkeep();
                });
            if let Err(e) = spawned {
                log::warn!(error = e.to_string(); "cannot start the metrics upkeep; histogram samples wait for a scrape");
            }
            if metrics::set_global_recorder(recorder).is_err() {
                // another recorder came first (a test binary's own): the
                // counted series go there, and this handle renders none
                log::warn!("a metrics recorder was already installed; /metrics shows only what is read at scrape time");
            }
            for m in CATALOGUE.iter().filter(|m| !m.at_scrape) {
                match m.kind {
                    Kind::Counter => metrics::describe_counter!(m.name, m.help),
                    Kind::Gauge => metrics::describe_gauge!(m.name, m.help),
                    Kind::Histogram => metrics::describe_histogram!(m.name, m.help),
                }
            }
            // label-less series, and every cap kind, start at zero, so a
            // rate or an increase over them is defined from the first scrape
            metrics::counter!(pinkpage_actors::metrics::TRANSFER_BYTES).absolute(0);
            metrics::counter!(pinkpage_actors::metrics::TRANSFER_FILES).absolute(0);
            for kind in pinkpage_actors::metrics::cap_kinds() {
                metrics::counter!(pinkpage_actors::metrics::CAPS_HIT, "kind" => kind).absolute(0);
            }
            handle
        })
        .clone()
}

/// The series read at scrape time, written in the text exposition format
/// (version 0.0.4). Each family gets its `# HELP` and `# TYPE` from the
/// catalogue, once, even with no sample.
#[derive(Default)]
pub struct Exposition {
    text: String,
}

impl Exposition {
    /// Starts family `name`; panics (in tests) on a name not in the
    /// catalogue or one counted elsewhere.
    pub fn family(&mut self, name: &str) -> &mut Self {
        let m: &Metric = CATALOGUE
            .iter()
            .find(|m| m.name == name)
            .unwrap_or_else(|| panic!("{name} is not in the metrics catalogue"));
        debug_assert!(m.at_scrape, "{name} is counted, not read at scrape time");
        let _ = writeln!(self.text, "# HELP {} {}", m.name, escape_help(m.help));
        let _ = writeln!(self.text, "# TYPE {} {}", m.name, m.kind.as_str());
        self
    }

    /// One sample of the family just started.
    pub fn sample(&mut self, name: &str, labels: &[(&str, &str)], value: f64) -> &mut Self {
        self.text.push_str(name);
        if !labels.is_empty() {
            self.text.push('{');
            for (i, (k, v)) in labels.iter().enumerate() {
                if i > 0 {
                    self.text.push(',');
                }
                let _ = write!(self.text, "{k}=\"{}\"", escape_label(v));
            }
            self.text.push('}');
        }
        let _ = writeln!(self.text, " {}", number(value));
        self
    }

    /// The text.
    pub fn finish(self) -> String {
        self.text
    }
}

/// A sample value as Prometheus writes it.
fn number(v: f64) -> String {
    if v.is_nan() {
        "NaN".into()
    } else if v.is_infinite() {
        if v > 0.0 { "+Inf" } else { "-Inf" }.into()
    } else {
        format!("{v}")
    }
}

/// A label value: backslash, double quote and line feed escaped.
fn escape_label(v: &str) -> String {
    v.replace('\\', "\\\\").replace('"', "\\\"").replace('\n', "\\n")
}

/// A help text: backslash and line feed escaped.
fn escape_help(v: &str) -> String {
    v.replace('\\', "\\\\").replace('\n', "\\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_family_has_its_help_and_type_and_label_values_are_escaped() {
        let mut e = Exposition::default();
        e.family("pinkpage_server_up")
            .sample("pinkpage_server_up", &[("server", "a\"b\\c\nd")], 1.0);
        let text = e.finish();
        assert!(text.starts_with("# HELP pinkpage_server_up Whether"), "{text}");
        assert!(text.contains("# TYPE pinkpage_server_up gauge\n"), "{text}");
        assert!(
            text.ends_with("pinkpage_server_up{server=\"a\\\"b\\\\c\\nd\"} 1\n"),
            "{text}"
        );
    }

    #[test]
    fn numbers_are_written_as_prometheus_reads_them() {
        assert_eq!(number(0.25), "0.25");
        assert_eq!(number(3.0), "3");
        assert_eq!(number(f64::NAN), "NaN");
        assert_eq!(number(f64::INFINITY), "+Inf");
    }
}
