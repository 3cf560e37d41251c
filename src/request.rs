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

use pinkpage_actors::server::ServerSpec;
use pinkpage_actors::{AppError, ErrorCode};

use crate::settings::Settings;

fn invalid(detail: impl Into<String>) -> AppError {
    AppError::with_detail(ErrorCode::Validation, detail)
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
    /// Looks `name` up in the configured servers.
    pub fn resolve(settings: &Settings, name: &str) -> Result<ServerRef, AppError> {
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
