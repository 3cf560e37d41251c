//! Request fields parsed once into validated types, shared by the
//! WebSocket domains and the REST handlers, so a limit or an error code is
//! decided in one place (a server unknown to one route is unknown with the
//! same code, 23000, to every other).
//!
//! Each type is built by a `parse` that answers 10001 (or 23000 for
//! [`ServerRef`]) with a detail naming the field; once built, the value is
//! known good and the handlers do not check it again.

use std::sync::Arc;
use std::time::Duration;

use pinkpage_actors::access::{Principal, Role, ServerScope};
use pinkpage_actors::server::ServerSpec;
use pinkpage_actors::{AppError, ErrorCode};

use crate::records::Visible;
use crate::settings::Settings;

/// A 10001 with `detail`.
pub(crate) fn invalid(detail: impl Into<String>) -> AppError {
    AppError::with_detail(ErrorCode::Validation, detail)
}

/// A string schema for the OpenAPI document: `pattern`, and `null` allowed
/// when `nullable`. For fields whose pattern is made from [`CharRanges`]
/// (utoipa's `pattern = "..."` takes only a literal).
pub(crate) fn string_schema(
    pattern: String,
    min_length: Option<usize>,
    max_length: Option<usize>,
    nullable: bool,
    description: &str,
) -> utoipa::openapi::Object {
    use utoipa::openapi::schema::{SchemaType, Type};
    let ty = if nullable {
        SchemaType::from_iter([Type::String, Type::Null])
    } else {
        SchemaType::new(Type::String)
    };
    utoipa::openapi::ObjectBuilder::new()
        .schema_type(ty)
        .pattern(Some(pattern))
        .min_length(min_length)
        .max_length(max_length)
        .description(Some(description))
        .build()
}

/// A count that JSON may spell `7` or `7.0`: JSON Schema (and so OpenAPI
/// 3.1) counts both as the integer 7, so both are accepted; `7.5`,
/// negatives and values past `T` are refused. For optional integer fields
/// of request bodies: `#[serde(default, deserialize_with = "whole_number")]`.
pub(crate) fn whole_number<'de, D, T>(de: D) -> Result<Option<T>, D::Error>
where
    D: serde::Deserializer<'de>,
    T: TryFrom<u64>,
{
    use serde::de::Error;
    use serde::Deserialize;
    let Some(n) = Option::<serde_json::Number>::deserialize(de)? else {
        return Ok(None);
    };
    let whole = n.as_u64().or_else(|| {
        n.as_f64()
            .filter(|f| f.fract() == 0.0 && *f >= 0.0 && *f <= u64::MAX as f64)
            .map(|f| f as u64)
    });
    whole
        .and_then(|w| T::try_from(w).ok())
        .map(Some)
        .ok_or_else(|| D::Error::custom(format!("expected a whole number in range, found {n}")))
}

/// A per-request timeout, `timeout_s` on the wire: a finite number of
/// seconds in `(0, 86400]`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct TimeoutS(Duration);

impl TimeoutS {
    /// Longest timeout a request may ask for (a day).
    pub const MAX_S: f64 = 86_400.0;

    /// Validates an optional `timeout_s`; `None` stays `None`.
    pub fn parse(value: Option<f64>) -> Result<Option<TimeoutS>, AppError> {
        match value {
            None => Ok(None),
            Some(s) if s.is_finite() && s > 0.0 && s <= Self::MAX_S => {
                Ok(Some(TimeoutS(Duration::from_secs_f64(s))))
            }
            Some(_) => Err(invalid(format!("timeout_s must be in (0, {}]", Self::MAX_S))),
        }
    }

    /// The timeout.
    pub fn duration(self) -> Duration {
        self.0
    }
}

/// A terminal output flush interval, `throttle_ms` on the wire: at most a
/// minute; the daemon's default when absent.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ThrottleMs(Duration);

impl ThrottleMs {
    /// Longest interval a request may ask for.
    pub const MAX_MS: u64 = 60_000;

    /// Validates an optional `throttle_ms`, falling back to `default`.
    pub fn parse(value: Option<u64>, default: Duration) -> Result<ThrottleMs, AppError> {
        match value {
            None => Ok(ThrottleMs(default)),
            Some(ms) if ms <= Self::MAX_MS => Ok(ThrottleMs(Duration::from_millis(ms))),
            Some(_) => Err(invalid(format!("throttle_ms must be at most {}", Self::MAX_MS))),
        }
    }

    /// The interval.
    pub fn duration(self) -> Duration {
        self.0
    }
}

/// A path on a remote server: not empty and without NUL (which SFTP would
/// cut the name at). Relative paths start at the login user's home.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RemotePath(String);

impl RemotePath {
    /// Validates the path given in field `field`.
    pub fn parse(field: &str, path: String) -> Result<RemotePath, AppError> {
        if path.is_empty() {
            return Err(invalid(format!("{field} must not be empty")));
        }
        if path.contains('\0') {
            return Err(invalid(format!("{field} must not contain NUL")));
        }
        Ok(RemotePath(path))
    }

    /// The path as sent.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The path, owned.
    pub fn into_string(self) -> String {
        self.0
    }
}

/// A configured server, looked up once by name: 23000 when there is none.
#[derive(Debug, Clone)]
pub struct ServerRef(Arc<ServerSpec>);

impl ServerRef {
    /// Looks `name` up in the configured servers, for `who`: 23000 when no
    /// such server exists, 10003 when it exists but `who`'s server tags do
    /// not cover it. Every path that names a server resolves it here, so
    /// this is the one place the server scope is enforced.
    pub fn resolve(settings: &Settings, who: &Principal, name: &str) -> Result<ServerRef, AppError> {
        let spec = settings.server(name).cloned().ok_or_else(|| {
            AppError::with_detail(ErrorCode::UnknownServer, format!("no server named '{name}'"))
        })?;
        if !who.may_use(&spec.tags) {
            return Err(AppError::with_detail(
                ErrorCode::Forbidden,
                format!(
                    "{} may not use server '{name}' (its tags are not among the account's)",
                    who.user
                ),
            ));
        }
        Ok(ServerRef(spec))
    }

    /// Which stored runs `who` may read: runs on servers it may use, as
    /// use is limited (WAVE2: reads are filtered by the same server scope
    /// as use). Administrators and accounts on every server read all of
    /// them; a run on a server no longer configured is shown only to them.
    pub fn visible_to(settings: &Settings, who: &Principal) -> Visible {
        if who.role == Role::Admin || who.servers == ServerScope::All {
            return Visible::All;
        }
        Visible::OnlyOn(
            settings
                .servers
                .values()
                .filter(|s| who.may_use(&s.tags))
                .map(|s| s.name.clone())
                .collect(),
        )
    }

    /// Looks `name` up for a read that acts on nothing (its health): any
    /// signed-in viewer may read every server's health.
    pub fn known(settings: &Settings, name: &str) -> Result<ServerRef, AppError> {
        settings.server(name).cloned().map(ServerRef).ok_or_else(|| {
            AppError::with_detail(ErrorCode::UnknownServer, format!("no server named '{name}'"))
        })
    }

    /// The server's name.
    pub fn name(&self) -> &str {
        &self.0.name
    }

    /// The server's settings.
    pub fn spec(&self) -> &Arc<ServerSpec> {
        &self.0
    }

    /// The server's settings, owned.
    pub fn into_spec(self) -> Arc<ServerSpec> {
        self.0
    }
}

/// A named transfer the caller may run: configured (23001), and both of
/// its servers in the caller's scope (10003), as the run and its dry run
/// both need.
pub struct TransferRef {
    /// The transfer.
    pub spec: Arc<pinkpage_actors::server::TransferSpec>,
    /// Its source server.
    pub source: Arc<ServerSpec>,
    /// Its destination server.
    pub destination: Arc<ServerSpec>,
}

impl TransferRef {
    /// Looks `name` up and checks both ends against `who`.
    pub fn resolve(settings: &Settings, who: &Principal, name: &str) -> Result<TransferRef, AppError> {
        let spec = settings.transfers.get(name).cloned().ok_or_else(|| {
            AppError::with_detail(ErrorCode::UnknownTransfer, format!("no transfer named '{name}'"))
        })?;
        // settings checked at startup that both servers exist
        let source = ServerRef::resolve(settings, who, &spec.source_server)?.into_spec();
        let destination = ServerRef::resolve(settings, who, &spec.destination_server)?.into_spec();
        Ok(TransferRef {
            spec,
            source,
            destination,
        })
    }
}

// ---------------------------------------------------------------------------
// Batch runs (BMX4): `batch_execute`, parsed once.
// ---------------------------------------------------------------------------

/// `batch_execute` as it arrives (after JSON, before validation); parse it
/// with [`BatchExecute::parse`].
#[derive(Debug, serde::Deserialize)]
pub struct BatchExecuteFields {
    /// One server name.
    pub server: Option<String>,
    /// Several server names (may be combined with `server`).
    pub servers: Option<Vec<String>>,
    /// Command lines, run in order on every server.
    pub commands: Vec<String>,
    /// Whether a command that still fails after its retries skips the
    /// rest of that server's commands (default false).
    #[serde(default)]
    pub stop_on_error: bool,
    /// Extra attempts for a failed command (default 0).
    #[serde(default)]
    pub retries: u32,
    /// Pause between attempts (default [`BatchExecute::DEFAULT_RETRY_DELAY_MS`]).
    #[serde(default = "default_retry_delay_ms")]
    pub retry_delay_ms: u64,
    /// Per-attempt timeout, seconds (default none).
    pub timeout_s: Option<f64>,
}

fn default_retry_delay_ms() -> u64 {
    BatchExecute::DEFAULT_RETRY_DELAY_MS
}

/// A `batch_execute` known good: servers deduplicated (first mention
/// wins) and each resolved, commands within the limits, retry policy and
/// timeout in range.
#[derive(Debug, Clone)]
pub struct BatchExecute {
    /// The servers, in the order given, each once.
    pub servers: Vec<ServerRef>,
    /// 1 to [`BatchExecute::MAX_COMMANDS`] command lines, none blank or
    /// over [`BatchExecute::MAX_COMMAND_BYTES`].
    pub commands: Vec<String>,
    /// Retries, their delay and stop-on-error.
    pub policy: pinkpage_actors::batch::plan::RetryPolicy,
    /// Per-attempt timeout.
    pub timeout: Option<TimeoutS>,
    /// `timeout_s` exactly as sent, for the run's record (the `Duration`
    /// of `timeout` may round it).
    pub timeout_s: Option<f64>,
}

impl BatchExecute {
    /// Most commands in one run.
    pub const MAX_COMMANDS: usize = 1000;
    /// Longest command line, bytes.
    pub const MAX_COMMAND_BYTES: usize = 64 * 1024;
    /// Most retries per command.
    pub const MAX_RETRIES: u32 = 100;
    /// Longest pause between attempts (an hour).
    pub const MAX_RETRY_DELAY_MS: u64 = 3_600_000;
    /// Pause between attempts when the client does not say.
    pub const DEFAULT_RETRY_DELAY_MS: u64 = 1000;

    /// Validates `fields` against the limits and the configured servers:
    /// 10001 for a missing server or a value out of range, 23000 for a
    /// server that is not configured (checked in that order, as the
    /// protocol documents).
    pub fn parse(
        fields: BatchExecuteFields,
        settings: &Settings,
        who: &Principal,
    ) -> Result<BatchExecute, AppError> {
        let mut seen = std::collections::HashSet::new();
        let names: Vec<String> = fields
            .server
            .into_iter()
            .chain(fields.servers.unwrap_or_default())
            .filter(|s| seen.insert(s.clone()))
            .collect();
        if names.is_empty() {
            return Err(invalid("give `server` or `servers`"));
        }
        let servers = names
            .iter()
            .map(|name| ServerRef::resolve(settings, who, name))
            .collect::<Result<Vec<_>, _>>()?;
        let commands = fields.commands;
        if commands.is_empty() {
            return Err(invalid("`commands` is empty"));
        }
        if commands.len() > Self::MAX_COMMANDS {
            return Err(invalid(format!(
                "{} commands; at most {} per run",
                commands.len(),
                Self::MAX_COMMANDS
            )));
        }
        if let Some(i) = commands.iter().position(|c| c.len() > Self::MAX_COMMAND_BYTES) {
            return Err(invalid(format!(
                "command {i} is {} bytes; the limit is {}",
                commands[i].len(),
                Self::MAX_COMMAND_BYTES
            )));
        }
        if let Some(i) = commands.iter().position(|c| c.trim().is_empty()) {
            return Err(invalid(format!("command {i} is empty")));
        }
        if fields.retries > Self::MAX_RETRIES {
            return Err(invalid(format!("retries must be at most {}", Self::MAX_RETRIES)));
        }
        if fields.retry_delay_ms > Self::MAX_RETRY_DELAY_MS {
            return Err(invalid(format!(
                "retry_delay_ms must be at most {}",
                Self::MAX_RETRY_DELAY_MS
            )));
        }
        let timeout = TimeoutS::parse(fields.timeout_s)?;
        Ok(BatchExecute {
            servers,
            commands,
            policy: pinkpage_actors::batch::plan::RetryPolicy {
                retries: fields.retries,
                retry_delay: Duration::from_millis(fields.retry_delay_ms),
                stop_on_error: fields.stop_on_error,
            },
            timeout,
            timeout_s: fields.timeout_s,
        })
    }

    /// The server names, in order.
    pub fn server_names(&self) -> Vec<String> {
        self.servers.iter().map(|s| s.name().to_owned()).collect()
    }
}

#[cfg(test)]
mod batch_execute_tests {
    use super::*;

    /// The seed's two servers, mdwap1p and mypap1d.
    fn admin() -> Principal {
        Principal {
            user: "root".into(),
            role: pinkpage_actors::access::Role::Admin,
            servers: pinkpage_actors::access::ServerScope::All,
            credential: pinkpage_actors::access::Credential::Proxy,
        }
    }

    fn settings() -> Settings {
        Settings::from_lookup(|k| match k {
            "HIWARE_ID" => Some("u".into()),
            "HIWARE_PW" => Some("p".into()),
            "MDWAP1P_IP" => Some("10.0.0.1".into()),
            "MYPAP1D_IP" => Some("10.0.0.2".into()),
            _ => None,
        })
        .unwrap()
    }

    fn fields(v: serde_json::Value) -> BatchExecuteFields {
        serde_json::from_value(v).unwrap()
    }

    fn code(v: serde_json::Value) -> ErrorCode {
        BatchExecute::parse(fields(v), &settings(), &admin())
            .unwrap_err()
            .code
    }

    #[test]
    fn servers_are_merged_deduplicated_and_resolved_in_order() {
        let b = BatchExecute::parse(
            fields(serde_json::json!({"server": "mypap1d", "servers": ["mdwap1p", "mypap1d", "mdwap1p"], "commands": ["true"]})),
            &settings(),
            &admin(),
        )
        .unwrap();
        assert_eq!(b.server_names(), vec!["mypap1d", "mdwap1p"]);
        assert_eq!(b.policy.retry_delay, Duration::from_millis(1000));
        assert!(b.timeout.is_none());
    }

    #[test]
    fn each_limit_answers_with_its_code() {
        use serde_json::json;
        let long = "x".repeat(BatchExecute::MAX_COMMAND_BYTES + 1);
        for (request, expected) in [
            (json!({"commands": ["true"]}), ErrorCode::Validation),
            (
                json!({"server": "nope", "commands": ["true"]}),
                ErrorCode::UnknownServer,
            ),
            (
                json!({"servers": ["mdwap1p", "nope"], "commands": []}),
                ErrorCode::UnknownServer,
            ),
            (
                json!({"server": "mdwap1p", "commands": []}),
                ErrorCode::Validation,
            ),
            (
                json!({"server": "mdwap1p", "commands": vec!["true"; 1001]}),
                ErrorCode::Validation,
            ),
            (
                json!({"server": "mdwap1p", "commands": [long]}),
                ErrorCode::Validation,
            ),
            (
                json!({"server": "mdwap1p", "commands": ["true", " "]}),
                ErrorCode::Validation,
            ),
            (
                json!({"server": "mdwap1p", "commands": ["true"], "retries": 101}),
                ErrorCode::Validation,
            ),
            (
                json!({"server": "mdwap1p", "commands": ["true"], "retry_delay_ms": 3_600_001}),
                ErrorCode::Validation,
            ),
            (
                json!({"server": "mdwap1p", "commands": ["true"], "timeout_s": 0}),
                ErrorCode::Validation,
            ),
        ] {
            assert_eq!(code(request.clone()), expected, "{request}");
        }
    }

    #[test]
    fn the_timeout_is_kept_as_sent_for_the_record() {
        let b = BatchExecute::parse(
            fields(serde_json::json!({"server": "mdwap1p", "commands": ["true"], "timeout_s": 2.3})),
            &settings(),
            &admin(),
        )
        .unwrap();
        assert_eq!(b.timeout_s, Some(2.3));
        assert!(b.timeout.unwrap().duration() >= Duration::from_millis(2299));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timeouts_outside_zero_to_a_day_are_refused_with_10001() {
        for bad in [0.0, -1.0, f64::NAN, f64::INFINITY, 86_400.5] {
            let err = TimeoutS::parse(Some(bad)).unwrap_err();
            assert_eq!(err.code, ErrorCode::Validation, "{bad}");
        }
        assert_eq!(TimeoutS::parse(None).unwrap(), None);
        let t = TimeoutS::parse(Some(1.5)).unwrap().unwrap();
        assert_eq!(t.duration(), Duration::from_millis(1500));
    }

    #[test]
    fn throttle_defaults_when_absent_and_is_capped_at_a_minute() {
        let default = Duration::from_millis(100);
        assert_eq!(ThrottleMs::parse(None, default).unwrap().duration(), default);
        assert_eq!(
            ThrottleMs::parse(Some(0), default).unwrap().duration(),
            Duration::ZERO
        );
        assert_eq!(
            ThrottleMs::parse(Some(60_001), default).unwrap_err().code,
            ErrorCode::Validation
        );
    }

    #[test]
    fn remote_paths_must_be_non_empty_and_free_of_nul() {
        assert!(RemotePath::parse("path", String::new()).is_err());
        let err = RemotePath::parse("path", "a\0b".into()).unwrap_err();
        assert_eq!(err.detail.as_deref(), Some("path must not contain NUL"));
        assert_eq!(
            RemotePath::parse("path", "/tmp/x".into()).unwrap().as_str(),
            "/tmp/x"
        );
    }
}
