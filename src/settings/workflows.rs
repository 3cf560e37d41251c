//! `[[workflows]]` in the servers file: parsed here, checked against the
//! configured servers and transfers at start-up, so a workflow that names
//! a missing server, a typo'd parameter or a quoted placeholder stops the
//! daemon from starting instead of failing half-way through a run.
//!
//! ```toml
//! [[workflows]]
//! name = "unload_copy_load"
//! description = "Unload on mdwap1p, copy the .dat files, load on mypap1d"
//!
//! [[workflows.params]]
//! name = "table"
//! type = "string"            # string (pattern), int (min, max), enum (values)
//! pattern = "[a-z_]{1,32}"   # the whole value must match
//! default = "orders"         # no default: the caller must send it
//!
//! [[workflows.steps]]
//! type = "command"           # command, transfer, batch, pause
//! name = "unload"
//! server = "mdwap1p"
//! command = "unload.sh {{table}}"   # values reach the shell quoted
//! timeout_s = 600            # default 3600 (a step takes no input)
//! expect_exit = [0]          # default [0]
//! continue_on_error = false  # default false
//!
//! [[workflows.steps]]
//! type = "pause"
//! message = "Check the unload row count of {{table}} before loading"
//! timeout_s = 3600           # default 3600; then the run is cancelled
//!
//! [[workflows.steps]]
//! type = "transfer"
//! transfer = "stub_data_transfer"
//!
//! [[workflows.steps]]
//! type = "batch"
//! servers = ["mdwap1p", "mypap1d"]
//! commands = ["df -h /data"]
//! retries = 0                # retry_delay_s, stop_on_error (true), timeout_s
//! ```

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use pinkpage_actors::server::{ServerSpec, TransferSpec};
use pinkpage_actors::workflow::definition::{
    Arg, Param, ParamKind, Step, StepKind, Workflow, DEFAULT_PAUSE_TIMEOUT, DEFAULT_STEP_TIMEOUT,
};
use pinkpage_actors::workflow::template::Template;
use serde::Deserialize;

/// One `[[workflows]]` table as written.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawWorkflow {
    name: String,
    #[serde(default)]
    description: String,
    #[serde(default)]
    params: Vec<RawParam>,
    #[serde(default)]
    steps: Vec<RawStep>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawParam {
    name: String,
    #[serde(rename = "type")]
    kind: String,
    #[serde(default)]
    description: String,
    pattern: Option<String>,
    min: Option<i64>,
    max: Option<i64>,
    values: Option<Vec<String>>,
    default: Option<toml::Value>,
}

#[derive(Debug, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
enum RawStep {
    Command {
        name: Option<String>,
        #[serde(default)]
        continue_on_error: bool,
        server: String,
        command: String,
        stop_phrase: Option<String>,
        timeout_s: Option<f64>,
        expect_exit: Option<Vec<u32>>,
    },
    Transfer {
        name: Option<String>,
        #[serde(default)]
        continue_on_error: bool,
        transfer: String,
    },
    Batch {
        name: Option<String>,
        #[serde(default)]
        continue_on_error: bool,
        servers: Vec<String>,
        commands: Vec<String>,
        #[serde(default)]
        retries: u32,
        retry_delay_s: Option<f64>,
        stop_on_error: Option<bool>,
        timeout_s: Option<f64>,
    },
    Pause {
        name: Option<String>,
        #[serde(default)]
        continue_on_error: bool,
        message: String,
        timeout_s: Option<f64>,
    },
}

/// Checks every workflow against the servers and transfers; each problem
/// names its workflow (and step).
pub fn build(
    raw: Vec<RawWorkflow>,
    servers: &BTreeMap<String, Arc<ServerSpec>>,
    transfers: &BTreeMap<String, Arc<TransferSpec>>,
) -> Result<BTreeMap<String, Arc<Workflow>>, String> {
    let mut out = BTreeMap::new();
    for w in raw {
        let name = w.name.clone();
        super::names::check_name("workflow", &name)?;
        if name == "runs" {
            return Err("workflow name 'runs' is reserved (it is a path of the API)".to_owned());
        }
        let workflow = workflow(w, servers, transfers).map_err(|e| format!("workflow '{name}': {e}"))?;
        if out.insert(name.clone(), Arc::new(workflow)).is_some() {
            return Err(format!("workflow '{name}' is defined twice"));
        }
    }
    Ok(out)
}

fn workflow(
    w: RawWorkflow,
    servers: &BTreeMap<String, Arc<ServerSpec>>,
    transfers: &BTreeMap<String, Arc<TransferSpec>>,
) -> Result<Workflow, String> {
    let mut params: Vec<Param> = Vec::new();
    for p in w.params {
        if params.iter().any(|q| q.name == p.name) {
            return Err(format!("parameter '{}' is declared twice", p.name));
        }
        params.push(param(p)?);
    }
    if w.steps.is_empty() {
        return Err("has no steps".to_owned());
    }
    let declared = |name: &str| params.iter().any(|p| p.name == name);
    let template = |text: &str| Template::parse(text, &declared);
    let server = |name: &String| {
        if servers.contains_key(name) {
            Ok(name.clone())
        } else {
            Err(format!("server '{name}' is not a configured server"))
        }
    };
    let mut steps = Vec::new();
    for (i, raw) in w.steps.into_iter().enumerate() {
        let step = |name: Option<String>, default: String, continue_on_error, kind| Step {
            name: name.unwrap_or(default),
            continue_on_error,
            kind,
        };
        let built = match raw {
            RawStep::Command {
                name,
                continue_on_error,
                server: s,
                command,
                stop_phrase,
                timeout_s,
                expect_exit,
            } => {
                let expect_exit = expect_exit.unwrap_or_else(|| vec![0]);
                if expect_exit.is_empty() {
                    return Err(format!(
                        "step {i}: expect_exit is empty: no exit status could succeed"
                    ));
                }
                if stop_phrase.as_deref() == Some("") {
                    return Err(format!("step {i}: stop_phrase is empty"));
                }
                if command.trim().is_empty() {
                    return Err(format!(
                        "step {i}: command is empty (a step takes no input, so it cannot be an interactive shell)"
                    ));
                }
                step(
                    name,
                    format!("command on {s}"),
                    continue_on_error,
                    StepKind::Command {
                        server: server(&s).map_err(|e| format!("step {i}: {e}"))?,
                        command: template(&command).map_err(|e| format!("step {i}: {e}"))?,
                        stop_phrase,
                        timeout: seconds(timeout_s)
                            .map_err(|e| format!("step {i}: {e}"))?
                            .unwrap_or(DEFAULT_STEP_TIMEOUT),
                        expect_exit,
                    },
                )
            }
            RawStep::Transfer {
                name,
                continue_on_error,
                transfer,
            } => {
                if !transfers.contains_key(&transfer) {
                    return Err(format!(
                        "step {i}: transfer '{transfer}' is not a configured transfer"
                    ));
                }
                step(
                    name,
                    format!("transfer {transfer}"),
                    continue_on_error,
                    StepKind::Transfer { transfer },
                )
            }
            RawStep::Batch {
                name,
                continue_on_error,
                servers: names,
                commands,
                retries,
                retry_delay_s,
                stop_on_error,
                timeout_s,
            } => {
                if names.is_empty() || commands.is_empty() {
                    return Err(format!("step {i}: a batch needs servers and commands"));
                }
                let names = names
                    .iter()
                    .map(server)
                    .collect::<Result<Vec<_>, _>>()
                    .map_err(|e| format!("step {i}: {e}"))?;
                let commands = commands
                    .iter()
                    .map(|c| template(c))
                    .collect::<Result<Vec<_>, _>>()
                    .map_err(|e| format!("step {i}: {e}"))?;
                step(
                    name,
                    format!("batch on {}", names.join(", ")),
                    continue_on_error,
                    StepKind::Batch {
                        servers: names,
                        commands,
                        retries,
                        retry_delay: seconds(retry_delay_s)
                            .map_err(|e| format!("step {i}: {e}"))?
                            .unwrap_or(Duration::from_secs(1)),
                        stop_on_error: stop_on_error.unwrap_or(true),
                        timeout: seconds(timeout_s)
                            .map_err(|e| format!("step {i}: {e}"))?
                            .unwrap_or(DEFAULT_STEP_TIMEOUT),
                    },
                )
            }
            RawStep::Pause {
                name,
                continue_on_error,
                message,
                timeout_s,
            } => step(
                name,
                "confirm".to_owned(),
                continue_on_error,
                StepKind::Pause {
                    message: Template::plain(&message, &declared).map_err(|e| format!("step {i}: {e}"))?,
                    timeout: seconds(timeout_s)
                        .map_err(|e| format!("step {i}: {e}"))?
                        .unwrap_or(DEFAULT_PAUSE_TIMEOUT),
                },
            ),
        };
        steps.push(built);
    }
    Ok(Workflow {
        name: w.name,
        description: w.description,
        params,
        steps,
    })
}

fn param(p: RawParam) -> Result<Param, String> {
    let who = format!("parameter '{}'", p.name);
    super::names::check_name("parameter", &p.name)?;
    let misplaced = |field: &str, present: bool| {
        if present {
            Err(format!("{who}: '{field}' does not apply to type {}", p.kind))
        } else {
            Ok(())
        }
    };
    let kind = match p.kind.as_str() {
        "string" => {
            misplaced("min", p.min.is_some())?;
            misplaced("max", p.max.is_some())?;
            misplaced("values", p.values.is_some())?;
            ParamKind::string(p.pattern).map_err(|e| format!("{who}: {e}"))?
        }
        "int" => {
            misplaced("pattern", p.pattern.is_some())?;
            misplaced("values", p.values.is_some())?;
            if let (Some(lo), Some(hi)) = (p.min, p.max) {
                if lo > hi {
                    return Err(format!("{who}: min {lo} is above max {hi}"));
                }
            }
            ParamKind::Int {
                min: p.min,
                max: p.max,
            }
        }
        "enum" => {
            misplaced("pattern", p.pattern.is_some())?;
            misplaced("min", p.min.is_some())?;
            misplaced("max", p.max.is_some())?;
            let values = p.values.unwrap_or_default();
            if values.is_empty() {
                return Err(format!("{who}: an enum needs values"));
            }
            ParamKind::Enum { values }
        }
        other => return Err(format!("{who}: type '{other}' is not one of string, int, enum")),
    };
    let mut param = Param {
        name: p.name,
        description: p.description,
        kind,
        default: None,
    };
    if let Some(default) = p.default {
        let arg = match default {
            toml::Value::String(s) => Arg::Text(s),
            toml::Value::Integer(n) => Arg::Int(n),
            other => {
                return Err(format!(
                    "{who}: default {other} is neither a string nor an integer"
                ))
            }
        };
        param.default = Some(param.check(&arg).map_err(|e| format!("default: {e}"))?);
    }
    Ok(param)
}

/// A positive, finite number of seconds, when given.
fn seconds(s: Option<f64>) -> Result<Option<Duration>, String> {
    match s {
        None => Ok(None),
        Some(s) if s.is_finite() && s > 0.0 && s < 1e7 => Ok(Some(Duration::from_secs_f64(s))),
        Some(s) => Err(format!("{s} is not a positive number of seconds")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn servers() -> BTreeMap<String, Arc<ServerSpec>> {
        let spec = |name: &str| ServerSpec {
            name: name.into(),
            host: "h".into(),
            port: 22,
            username: "u".into(),
            auth: pinkpage_actors::server::Auth::Password(pinkpage_actors::Secret::new("p".to_owned())),
            host_key_fingerprint: None,
            encoding: encoding_rs::UTF_8,
            tags: Vec::new(),
            command_mode: Default::default(),
            record: true,
        };
        ["a", "b"]
            .into_iter()
            .map(|n| (n.to_owned(), Arc::new(spec(n))))
            .collect()
    }

    fn transfers() -> BTreeMap<String, Arc<TransferSpec>> {
        BTreeMap::from([(
            "t".to_owned(),
            Arc::new(TransferSpec {
                name: "t".into(),
                source_server: "a".into(),
                source_glob: "/out/*.dat".into(),
                destination_server: "b".into(),
                destination_dir: "/in/".into(),
                verify_sha256: false,
            }),
        )])
    }

    fn parse(text: &str) -> Result<BTreeMap<String, Arc<Workflow>>, String> {
        #[derive(Deserialize)]
        struct File {
            workflows: Vec<RawWorkflow>,
        }
        let file: File = toml::from_str(text).map_err(|e| e.message().to_owned())?;
        build(file.workflows, &servers(), &transfers())
    }

    #[test]
    fn the_example_in_the_docs_parses() {
        let text = include_str!("../../examples/seed-workflow.toml");
        assert!(
            include_str!("../../docs/workflows.md").contains(text),
            "docs/workflows.md must show examples/seed-workflow.toml as it is"
        );
        let file: toml::Table = toml::from_str(text).unwrap();
        assert!(file.contains_key("workflows"));
        let text = text
            .replace("mdwap1p", "a")
            .replace("mypap1d", "b")
            .replace("stub_data_transfer", "t");
        let w = parse(&text).unwrap();
        assert_eq!(w.len(), 1);
        let wf = w.values().next().unwrap();
        assert_eq!(
            wf.steps.iter().map(|s| s.kind.as_str()).collect::<Vec<_>>(),
            ["command", "pause", "transfer", "command"]
        );
    }

    #[test]
    fn a_full_workflow_parses_with_defaults() {
        let w = parse(
            r#"
            [[workflows]]
            name = "w"
            [[workflows.params]]
            name = "n"
            type = "int"
            min = 1
            default = 3
            [[workflows.steps]]
            type = "command"
            server = "a"
            command = "seq {{n}}"
            [[workflows.steps]]
            type = "batch"
            servers = ["a", "b"]
            commands = ["true"]
            [[workflows.steps]]
            type = "pause"
            message = "ok?"
            "#,
        )
        .unwrap();
        let wf = &w["w"];
        assert_eq!(wf.params[0].default.as_deref(), Some("3"));
        assert_eq!(wf.steps[0].name, "command on a");
        assert!(matches!(&wf.steps[0].kind, StepKind::Command { expect_exit, .. } if expect_exit == &[0]));
        assert!(matches!(
            &wf.steps[1].kind,
            StepKind::Batch {
                stop_on_error: true,
                ..
            }
        ));
        assert!(
            matches!(&wf.steps[2].kind, StepKind::Pause { timeout, .. } if *timeout == DEFAULT_PAUSE_TIMEOUT)
        );
    }

    #[test]
    fn each_mistake_is_refused_with_its_place() {
        let head = "[[workflows]]\nname = \"w\"\n";
        let param = "[[workflows.params]]\nname = \"p\"\ntype = \"string\"\n";
        let cmd =
            |c: &str| format!("[[workflows.steps]]\ntype = \"command\"\nserver = \"a\"\ncommand = '{c}'\n");
        for (text, why) in [
            (
                format!("{head}{}", cmd("true").replace("\"a\"", "\"zz\"")),
                "server 'zz'",
            ),
            (format!("{head}{}", cmd("echo {{p}}")), "names no parameter"),
            (
                format!("{head}{param}{}", cmd("echo \"{{p}}\"")),
                "inside double quotes",
            ),
            (
                format!("{head}[[workflows.steps]]\ntype = \"transfer\"\ntransfer = \"nope\"\n"),
                "transfer 'nope'",
            ),
            (
                format!("{head}[[workflows.steps]]\ntype = \"reboot\"\n"),
                "unknown variant",
            ),
            (format!("{head}{}timeout = 3\n", cmd("true")), "unknown field"),
            (
                format!("{head}{param}pattern = \"(\"\n{}", cmd("true")),
                "pattern",
            ),
            (
                format!("{head}{param}default = \"x\"\nmin = 1\n{}", cmd("true")),
                "'min' does not apply",
            ),
            (
                format!(
                    "{head}[[workflows.params]]\nname = \"p\"\ntype = \"int\"\nmin = 5\ndefault = 1\n{}",
                    cmd("true")
                ),
                "default",
            ),
            (format!("{head}{}expect_exit = []\n", cmd("true")), "expect_exit"),
            (format!("{head}{}timeout_s = -1\n", cmd("true")), "positive"),
            (format!("{head}{}", cmd(" ")), "command is empty"),
            (head.to_owned(), "no steps"),
            (
                format!("[[workflows]]\nname = \"runs\"\n{}", cmd("true")),
                "reserved",
            ),
            (
                format!("{head}{}{head}{}", cmd("true"), cmd("true")),
                "defined twice",
            ),
        ] {
            let err = parse(&text).unwrap_err();
            assert!(err.contains(why), "{text}\n=> {err}");
        }
    }
}
