//! Who may read which recordings: the one place that decides it (the
//! listing, the file and the deletion all ask here).
//!
//! - Administrators read every recording and may delete them.
//! - Everyone else (operators and viewers) reads only their own
//!   recordings, and of those only the ones on servers still in their
//!   scope (WAVE2: reads are filtered by the same server scope as use): a
//!   recording shows what a PTY printed, so reading another user's is
//!   watching their session after the fact, which only administrators may
//!   do live (`terminal_watch`). Another user's recording answers 10003.

use pinkpage_actors::access::{Principal, Role};
use pinkpage_actors::{AppError, ErrorCode};

use crate::records::recording::Recording;
use crate::records::Visible;
use crate::request::ServerRef;
use crate::settings::Settings;

/// What a listing by `who` is limited to: the servers, and whose.
pub fn scope(settings: &Settings, who: &Principal) -> (Visible, Option<String>) {
    if who.role == Role::Admin {
        return (Visible::All, None);
    }
    (ServerRef::visible_to(settings, who), Some(who.user.to_string()))
}

/// Whether `who` may read `recording` (10003 when not).
pub fn may_read(settings: &Settings, who: &Principal, recording: &Recording) -> Result<(), AppError> {
    let (visible, owner) = scope(settings, who);
    let theirs = owner.is_none_or(|o| o == recording.user);
    if theirs && visible.allows(&[&recording.server]) {
        return Ok(());
    }
    Err(AppError::with_detail(
        ErrorCode::Forbidden,
        format!("{} may not read recording {}", who.user, recording.id),
    ))
}

/// Whether `who` may delete recordings (administrators only; 10003).
pub fn may_delete(who: &Principal) -> Result<(), AppError> {
    if who.role == Role::Admin {
        return Ok(());
    }
    Err(AppError::with_detail(
        ErrorCode::Forbidden,
        "only administrators delete recordings",
    ))
}
