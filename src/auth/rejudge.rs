//! Re-judging running work when access changes (WAVE2, "Access that
//! changes").
//!
//! Work is judged when it starts: the access table decides what its
//! message type or route needs ([`super::table`]) and every server it names
//! is resolved for its caller (`ServerRef::resolve`). Access can change
//! while the work runs: a lower role, fewer server tags, a disabled or
//! removed account, a revoked credential, a server no longer configured.
//! This module is the one place that decides whether running work may go
//! on under the access as it is *now*; whoever owns running work asks it
//! whenever `Event::AccessChanged` is published:
//! - each WebSocket connection, for its tasks (a command or shell, a
//!   transfer, a batch run, a script, diffs) and for the session lock it
//!   holds (`crate::ws`, `Domain::access_changed`);
//! - the workflow hub, for every run in flight (`crate::workflows`), and
//!   for who may confirm, cancel or watch a run.
//!
//! What is withdrawn stops with 10010 ("access changed"): the owner sends
//! the stop at once and tells the client with that code; the task's end
//! (and so its remote process's) follows within the task contract's
//! give-up bound; a lock whose holder may no longer hold it is released
//! once its task ended, as `end_session` does.
//!
//! What is judged is the rule, not the credential's bookkeeping: a
//! connection's credential is re-checked first (a refused one closes the
//! connection, 10002); a workflow run is judged by its starter's account
//! (it goes on after a sign-out, not after a revoked token).

use pinkpage_actors::access::{Credential, Need, Principal};
use pinkpage_actors::{AppError, ErrorCode};

use super::directory::Refusal;
use super::Identity;
use crate::settings::live::LiveSettings;
use crate::settings::Settings;

/// The servers as configured now: what a server name resolves to when
/// work is judged again. [`Settings`] in the daemon; a plain map in unit
/// tests of the workflow hub.
pub trait Servers: Send + Sync + 'static {
    /// The tags of server `name`, or `None` when no such server is
    /// configured.
    fn tags(&self, name: &str) -> Option<Vec<String>>;
}

impl Servers for Settings {
    fn tags(&self, name: &str) -> Option<Vec<String>> {
        self.server(name).map(|s| s.tags.clone())
    }
}

/// The servers as a reload last left them: what running work is judged
/// against when access changes.
impl Servers for LiveSettings {
    fn tags(&self, name: &str) -> Option<Vec<String>> {
        self.current().tags(name)
    }
}

impl Servers for std::collections::BTreeMap<String, Vec<String>> {
    fn tags(&self, name: &str) -> Option<Vec<String>> {
        self.get(name).cloned()
    }
}

/// The 10010 that stops withdrawn work, saying why.
pub fn withdrawn(why: impl Into<String>) -> AppError {
    AppError::with_detail(ErrorCode::AccessChanged, why.into())
}

/// Whether `now` (a principal as it is now) may go on with work that needs
/// `need` on `servers`; 10010 saying why not.
///
/// The same two questions as at the start, asked again: the role against
/// the need (`Principal::meets`) and each server against the account's
/// tags (`Principal::may_use`, the rule `ServerRef::resolve` applies).
pub fn judge(servers: &dyn Servers, now: &Principal, need: Need, names: &[&str]) -> Result<(), AppError> {
    if !now.meets(need) {
        return Err(withdrawn(format!(
            "{} is now {} and this work needs {}",
            now.user,
            now.role,
            need.as_str()
        )));
    }
    for name in names {
        match servers.tags(name) {
            None => return Err(withdrawn(format!("server '{name}' is no longer configured"))),
            Some(tags) if !now.may_use(&tags) => {
                return Err(withdrawn(format!(
                    "{} may no longer use server '{name}' (its tags are not among the account's)",
                    now.user
                )))
            }
            Some(_) => {}
        }
    }
    Ok(())
}

/// The account behind work started by `started_by`, as it is now, for work
/// that outlives its credential (a workflow run): 10010 when the account
/// was disabled or removed, or the token that started it was revoked.
pub fn account_now(identity: &Identity, started_by: &Principal) -> Result<Principal, AppError> {
    let dir = identity.read();
    match dir.recheck(started_by, chrono::Utc::now(), identity.idle()) {
        Ok(now) => Ok(now),
        Err(Refusal::Revoked) if matches!(started_by.credential, Credential::Token(_)) => {
            Err(withdrawn("the token that started this work was revoked"))
        }
        // a sign-out or an expired sign-in session: judged by the account
        Err(_) => dir.account_now(started_by).map_err(|r| withdrawn(r.reason())),
    }
}

/// Account `name` as it is now (see [`super::directory::Directory::account_as_is`]):
/// 10010 when it was disabled or removed.
pub fn account_by_name(identity: &Identity, name: &str) -> Result<Principal, AppError> {
    identity
        .read()
        .account_as_is(name)
        .map_err(|r| withdrawn(format!("{name}: {}", r.reason())))
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;
    use std::sync::Arc;

    use pinkpage_actors::access::{Role, ServerScope};

    use super::*;

    fn servers() -> BTreeMap<String, Vec<String>> {
        BTreeMap::from([
            ("web-1".to_owned(), vec!["web".to_owned()]),
            ("db-1".to_owned(), vec!["db".to_owned()]),
        ])
    }

    fn who(role: Role, scope: ServerScope) -> Principal {
        Principal {
            user: Arc::from("ana"),
            role,
            servers: scope,
            credential: Credential::Proxy,
        }
    }

    #[test]
    fn work_goes_on_while_role_and_tags_still_cover_it() {
        let web = ServerScope::Tags(vec!["web".into()]);
        assert!(judge(
            &servers(),
            &who(Role::Operator, web.clone()),
            Need::Operator,
            &["web-1"]
        )
        .is_ok());
        assert!(judge(&servers(), &who(Role::Admin, web), Need::Operator, &["db-1"]).is_ok());
    }

    #[test]
    fn a_lower_role_fewer_tags_or_a_server_gone_withdraw_it_with_10010() {
        let db = ServerScope::Tags(vec!["db".into()]);
        for (now, names, says) in [
            (who(Role::Viewer, ServerScope::All), vec![], "is now viewer"),
            (
                who(Role::Operator, db),
                vec!["db-1", "web-1"],
                "may no longer use server 'web-1'",
            ),
            (
                who(Role::Operator, ServerScope::All),
                vec!["gone"],
                "'gone' is no longer configured",
            ),
        ] {
            let e = judge(&servers(), &now, Need::Operator, &names).unwrap_err();
            assert_eq!(e.code, ErrorCode::AccessChanged);
            assert!(e.detail.as_deref().unwrap_or("").contains(says), "{e:?}");
        }
    }
}
