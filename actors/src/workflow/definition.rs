//! A workflow as configured (`[[workflows]]` in the servers file), its
//! typed parameters, and binding the values a caller sends.
//!
//! The daemon's settings build a [`Workflow`] once at start-up (every
//! server, transfer, parameter and template checked there); a run binds
//! its values with [`Workflow::bind`] before anything runs, so a value
//! that fails its type is refused (10001) with nothing started.

use std::collections::BTreeMap;
use std::time::Duration;

use regex::Regex;

use super::template::Template;
use crate::error::{AppError, ErrorCode};

/// Longest text a `string` parameter takes when its pattern does not say.
pub const MAX_STRING_PARAM: usize = 4096;

/// How long a pause waits for `workflow_confirm` unless its step says.
pub const DEFAULT_PAUSE_TIMEOUT: Duration = Duration::from_secs(3600);

/// How long a command step (or each attempt of a batch step) may run
/// unless its step says: a step takes no input, so one stuck at a prompt
/// must not hold the session lock forever.
pub const DEFAULT_STEP_TIMEOUT: Duration = Duration::from_secs(3600);

/// One named, ordered sequence of steps.
#[derive(Debug, Clone)]
pub struct Workflow {
    /// The name clients use; unique.
    pub name: String,
    /// What it is for, shown to operators.
    pub description: String,
    /// Its parameters, in declaration order.
    pub params: Vec<Param>,
    /// Its steps, run in order.
    pub steps: Vec<Step>,
}

/// A typed parameter.
#[derive(Debug, Clone)]
pub struct Param {
    /// The name templates use (`{{name}}`).
    pub name: String,
    /// Shown next to the field.
    pub description: String,
    /// Its type and constraints.
    pub kind: ParamKind,
    /// Used when the caller sends none; `None` makes it required.
    pub default: Option<String>,
}

/// A parameter's type.
#[derive(Debug, Clone)]
pub enum ParamKind {
    /// Text, optionally matching a pattern (the whole value must match).
    String {
        /// The pattern as written.
        pattern: Option<String>,
        /// The pattern, anchored at both ends.
        regex: Option<Regex>,
    },
    /// A whole number, optionally within a range (inclusive).
    Int {
        /// Smallest allowed.
        min: Option<i64>,
        /// Largest allowed.
        max: Option<i64>,
    },
    /// One of a fixed list.
    Enum {
        /// The allowed values.
        values: Vec<String>,
    },
}

impl ParamKind {
    /// The type's name in the servers file and on the wire.
    pub fn as_str(&self) -> &'static str {
        match self {
            ParamKind::String { .. } => "string",
            ParamKind::Int { .. } => "int",
            ParamKind::Enum { .. } => "enum",
        }
    }

    /// A `string` parameter's kind with `pattern` compiled (anchored).
    pub fn string(pattern: Option<String>) -> Result<ParamKind, String> {
        let regex = pattern
            .as_deref()
            .map(|p| Regex::new(&format!("^(?:{p})$")).map_err(|e| format!("pattern '{p}': {e}")))
            .transpose()?;
        Ok(ParamKind::String { pattern, regex })
    }
}

/// A value as a caller sent it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Arg {
    /// A JSON string.
    Text(String),
    /// A JSON integer.
    Int(i64),
}

impl Param {
    /// Checks `arg` against the type; the value as text, as it reaches a
    /// template.
    pub fn check(&self, arg: &Arg) -> Result<String, String> {
        let name = &self.name;
        match (&self.kind, arg) {
            (ParamKind::String { pattern, regex }, Arg::Text(text)) => {
                if text.chars().any(|c| c.is_control() && c != '\t') {
                    return Err(format!(
                        "'{name}' must not contain control characters (a newline, NUL, escape sequences)"
                    ));
                }
                if text.len() > MAX_STRING_PARAM {
                    return Err(format!("'{name}' is longer than {MAX_STRING_PARAM} bytes"));
                }
                if let (Some(p), Some(re)) = (pattern, regex) {
                    if !re.is_match(text) {
                        return Err(format!("'{name}' must match the pattern {p}"));
                    }
                }
                Ok(text.clone())
            }
            (ParamKind::Int { min, max }, arg) => {
                let n = match arg {
                    Arg::Int(n) => *n,
                    Arg::Text(t) => t
                        .trim()
                        .parse::<i64>()
                        .map_err(|_| format!("'{name}' must be a whole number"))?,
                };
                if min.is_some_and(|m| n < m) || max.is_some_and(|m| n > m) {
                    let lo = min.map_or("..".to_owned(), |m| m.to_string());
                    let hi = max.map_or("..".to_owned(), |m| m.to_string());
                    return Err(format!("'{name}' must be within {lo}..={hi}, not {n}"));
                }
                Ok(n.to_string())
            }
            (ParamKind::Enum { values }, Arg::Text(text)) => {
                if values.iter().any(|v| v == text) {
                    Ok(text.clone())
                } else {
                    Err(format!("'{name}' must be one of {}", values.join(", ")))
                }
            }
            (kind, Arg::Int(_)) => Err(format!(
                "'{name}' is a {} parameter: send a string",
                kind.as_str()
            )),
        }
    }
}

/// One step.
#[derive(Debug, Clone)]
pub struct Step {
    /// Shown in the timeline (defaults to the kind and its target).
    pub name: String,
    /// Whether the run goes on when this step fails (the step still shows
    /// `failed`; the run does not fail because of it).
    pub continue_on_error: bool,
    /// What it does.
    pub kind: StepKind,
}

/// What a step does.
#[derive(Debug, Clone)]
pub enum StepKind {
    /// A command on a PTY (an `SshShellActor`).
    Command {
        /// The server's name.
        server: String,
        /// The command line, parameters quoted in.
        command: Template,
        /// Finish successfully when this text appears.
        stop_phrase: Option<String>,
        /// Fail after this long.
        timeout: Duration,
        /// Exit statuses that count as success (`[0]` by default).
        expect_exit: Vec<u32>,
    },
    /// A named transfer (a `TransferActor`).
    Transfer {
        /// The transfer's name.
        transfer: String,
    },
    /// Commands on servers without a PTY (a `BatchRunActor`).
    Batch {
        /// Server names, run in parallel.
        servers: Vec<String>,
        /// Command lines, run in order on every server.
        commands: Vec<Template>,
        /// Extra attempts per failed command.
        retries: u32,
        /// Pause between attempts.
        retry_delay: Duration,
        /// Whether a failed command ends its server's commands.
        stop_on_error: bool,
        /// Per-attempt timeout.
        timeout: Duration,
    },
    /// Wait for an operator's `workflow_confirm`.
    Pause {
        /// What to check before confirming (parameters shown as they are).
        message: Template,
        /// How long to wait before the run is cancelled.
        timeout: Duration,
    },
}

impl StepKind {
    /// The kind's wire name.
    pub fn as_str(&self) -> &'static str {
        match self {
            StepKind::Command { .. } => "command",
            StepKind::Transfer { .. } => "transfer",
            StepKind::Batch { .. } => "batch",
            StepKind::Pause { .. } => "pause",
        }
    }

    /// The servers this step acts on (a transfer's are looked up by the
    /// caller, who knows the transfers).
    pub fn servers(&self) -> Vec<&str> {
        match self {
            StepKind::Command { server, .. } => vec![server.as_str()],
            StepKind::Batch { servers, .. } => servers.iter().map(String::as_str).collect(),
            StepKind::Transfer { .. } | StepKind::Pause { .. } => Vec::new(),
        }
    }
}

/// Values bound to every parameter, as text: what templates render.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Bound(pub BTreeMap<String, String>);

impl Bound {
    /// The value of `name` (empty for a name binding did not check, which
    /// start-up validation rules out).
    pub fn get(&self, name: &str) -> String {
        self.0.get(name).cloned().unwrap_or_default()
    }
}

impl Workflow {
    /// The parameter called `name`.
    pub fn param(&self, name: &str) -> Option<&Param> {
        self.params.iter().find(|p| p.name == name)
    }

    /// Binds `given` to the parameters: every value checked against its
    /// type, defaults filled in, unknown names and missing required values
    /// refused. All problems are reported at once (10001).
    pub fn bind(&self, given: &BTreeMap<String, Arg>) -> Result<Bound, AppError> {
        let mut problems = Vec::new();
        let mut bound = BTreeMap::new();
        for name in given.keys() {
            if self.param(name).is_none() {
                problems.push(format!("'{name}' is not a parameter of workflow '{}'", self.name));
            }
        }
        for p in &self.params {
            match (given.get(&p.name), &p.default) {
                (Some(arg), _) => match p.check(arg) {
                    Ok(v) => {
                        bound.insert(p.name.clone(), v);
                    }
                    Err(e) => problems.push(e),
                },
                (None, Some(default)) => {
                    bound.insert(p.name.clone(), default.clone());
                }
                (None, None) => problems.push(format!("'{}' is required", p.name)),
            }
        }
        if problems.is_empty() {
            Ok(Bound(bound))
        } else {
            Err(AppError::with_detail(ErrorCode::Validation, problems.join("; ")))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn workflow() -> Workflow {
        Workflow {
            name: "w".into(),
            description: String::new(),
            params: vec![
                Param {
                    name: "day".into(),
                    description: String::new(),
                    kind: ParamKind::string(Some(r"\d{8}".into())).unwrap(),
                    default: None,
                },
                Param {
                    name: "rows".into(),
                    description: String::new(),
                    kind: ParamKind::Int {
                        min: Some(1),
                        max: Some(100),
                    },
                    default: Some("10".into()),
                },
                Param {
                    name: "mode".into(),
                    description: String::new(),
                    kind: ParamKind::Enum {
                        values: vec!["full".into(), "delta".into()],
                    },
                    default: Some("full".into()),
                },
            ],
            steps: Vec::new(),
        }
    }

    fn args(pairs: &[(&str, Arg)]) -> BTreeMap<String, Arg> {
        pairs.iter().map(|(k, v)| (k.to_string(), v.clone())).collect()
    }

    #[test]
    fn values_are_checked_and_defaults_filled_in() {
        let b = workflow()
            .bind(&args(&[
                ("day", Arg::Text("20261129".into())),
                ("rows", Arg::Int(5)),
            ]))
            .unwrap();
        assert_eq!(b.get("day"), "20261129");
        assert_eq!(b.get("rows"), "5");
        assert_eq!(b.get("mode"), "full");
        // an int may come as text (a form field)
        let b = workflow()
            .bind(&args(&[
                ("day", Arg::Text("20261129".into())),
                ("rows", Arg::Text(" 7".into())),
            ]))
            .unwrap();
        assert_eq!(b.get("rows"), "7");
    }

    #[test]
    fn every_problem_is_named_at_once() {
        let err = workflow()
            .bind(&args(&[
                ("day", Arg::Text("2026-11-29; rm -rf /".into())),
                ("rows", Arg::Int(1000)),
                ("mode", Arg::Text("all".into())),
                ("extra", Arg::Int(1)),
            ]))
            .unwrap_err();
        assert_eq!(err.code, ErrorCode::Validation);
        let detail = err.detail.unwrap();
        for part in [
            "must match the pattern",
            "within 1..=100",
            "one of full, delta",
            "'extra' is not",
        ] {
            assert!(detail.contains(part), "{detail}");
        }
    }

    #[test]
    fn a_required_value_is_required_and_types_are_not_mixed() {
        let err = workflow().bind(&BTreeMap::new()).unwrap_err();
        assert!(err.detail.unwrap().contains("'day' is required"));
        let err = workflow()
            .bind(&args(&[("day", Arg::Int(20261129))]))
            .unwrap_err();
        assert!(err.detail.unwrap().contains("send a string"));
    }

    #[test]
    fn the_pattern_must_match_the_whole_value() {
        let p = &workflow().params[0];
        assert!(p.check(&Arg::Text("20261129".into())).is_ok());
        assert!(p.check(&Arg::Text("x20261129".into())).is_err());
        assert!(p.check(&Arg::Text("20261129\n".into())).is_err());
        assert!(p.check(&Arg::Text("2026\x001129".into())).is_err());
        let free = Param {
            kind: ParamKind::string(None).unwrap(),
            ..p.clone()
        };
        assert!(free.check(&Arg::Text("a\tb c".into())).is_ok());
        for bad in ["a\nid", "a\rb", "a\x1b[2J", "a\x00"] {
            let err = free.check(&Arg::Text(bad.into())).unwrap_err();
            assert!(err.contains("control characters"), "{bad:?}: {err}");
        }
    }
}
