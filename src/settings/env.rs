//! What every settings file shares: [`SettingsError`] (a setting that
//! cannot be used, named), [`SettingDoc`] (one documented setting) and
//! `Env`, typed access to the environment lookup. A leaf: the settings
//! files import it, it imports none of them.

use std::path::PathBuf;
use std::time::Duration;

use pinkpage_actors::server::CommandMode;

/// A setting that is missing or cannot be used.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("invalid setting {variable}: {problem}")]
pub struct SettingsError {
    /// The environment variable (or servers-file key) at fault.
    pub variable: String,
    /// What is wrong with it, without echoing secret values.
    pub problem: String,
}

impl SettingsError {
    pub(super) fn new(variable: impl Into<String>, problem: impl Into<String>) -> Self {
        SettingsError {
            variable: variable.into(),
            problem: problem.into(),
        }
    }
}

/// One documented setting: the single list behind `pinkpage --help`,
/// `.env.example` (a test keeps them in step) and the README table.
#[derive(Debug, Clone, Copy)]
pub struct SettingDoc {
    /// Environment variable name.
    pub name: &'static str,
    /// Default value, or `unset` / `required`.
    pub default: &'static str,
    /// What it controls.
    pub meaning: &'static str,
}

/// Typed access to the lookup, each failure naming its variable.
pub(super) struct Env<'a>(pub(super) &'a dyn Fn(&str) -> Option<String>);

impl Env<'_> {
    /// The value, with empty strings treated as unset (as `.env` files
    /// often carry `NAME=`).
    pub(super) fn get(&self, name: &str) -> Option<String> {
        (self.0)(name).filter(|v| !v.trim().is_empty())
    }

    pub(super) fn path(&self, name: &str, default: &str) -> PathBuf {
        PathBuf::from(self.get(name).unwrap_or_else(|| default.to_owned()))
    }

    pub(super) fn parse_or<T>(
        &self,
        name: &str,
        default: T,
        valid: impl Fn(&T) -> bool,
    ) -> Result<T, SettingsError>
    where
        T: std::str::FromStr,
    {
        match self.get(name) {
            None => Ok(default),
            Some(raw) => match raw.trim().parse::<T>() {
                Ok(v) if valid(&v) => Ok(v),
                _ => Err(SettingsError::new(
                    name,
                    format!("'{}' is not a valid value", raw.trim()),
                )),
            },
        }
    }

    /// An output encoding by WHATWG label (`euc-kr`); UTF-8 when unset.
    pub(super) fn encoding(&self, name: &str) -> Result<&'static encoding_rs::Encoding, SettingsError> {
        match self.get(name) {
            None => Ok(encoding_rs::UTF_8),
            Some(label) => encoding_rs::Encoding::for_label(label.trim().as_bytes()).ok_or_else(|| {
                SettingsError::new(name, format!("'{}' is not a known encoding", label.trim()))
            }),
        }
    }

    /// `exec` or `shell`; `exec` when unset.
    pub(super) fn command_mode(&self, name: &str) -> Result<CommandMode, SettingsError> {
        match self.get(name) {
            None => Ok(CommandMode::Exec),
            Some(raw) => CommandMode::parse(raw.trim()).ok_or_else(|| {
                SettingsError::new(name, format!("'{}' is not one of exec, shell", raw.trim()))
            }),
        }
    }

    /// A positive, finite number of seconds (fractions allowed).
    pub(super) fn seconds(&self, name: &str, default: f64) -> Result<Duration, SettingsError> {
        let secs = self.parse_or(name, default, |s: &f64| s.is_finite() && *s > 0.0 && *s < 1e9)?;
        Ok(Duration::from_secs_f64(secs))
    }

    /// As [`Env::seconds`], and 0 allowed (for "off").
    pub(super) fn seconds_or_zero(&self, name: &str, default: f64) -> Result<Duration, SettingsError> {
        let secs = self.parse_or(name, default, |s: &f64| s.is_finite() && *s >= 0.0 && *s < 1e9)?;
        Ok(Duration::from_secs_f64(secs))
    }
}
