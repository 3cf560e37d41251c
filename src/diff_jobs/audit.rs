//! The audit row of a diff, written by the WebSocket domain and by REST
//! alike when a diff is accepted (before it touches a server), so a diff a
//! client abandons halfway is on the trail too.

use pinkpage_actors::diff::remote::Target;
use serde_json::json;

use super::DiffJob;
use crate::records::NewAuditEvent;

impl DiffJob {
    /// `base` (who, from where) filled in with what this diff touches:
    /// action `diff.files`, `diff.dirs` or `diff.command`; `server` the
    /// left server; `target` the left path (files and directories);
    /// `command` the command text of a `diff_command`; both sides in
    /// `detail`.
    pub fn audit_event(&self, mut base: NewAuditEvent) -> NewAuditEvent {
        let side = |t: &Target| json!({"server": t.server.name, "path": t.path});
        let (action, left, right) = match self {
            DiffJob::Files { left, right, .. } => ("diff.files", side(left), side(right)),
            DiffJob::Dirs { left, right, .. } => ("diff.dirs", side(left), side(right)),
            DiffJob::Command {
                command, left, right, ..
            } => {
                base.command = Some(command.clone());
                (
                    "diff.command",
                    json!({"server": left.server.name}),
                    json!({"server": right.server.name}),
                )
            }
        };
        base.action = action.to_owned();
        base.server = left["server"].as_str().map(str::to_owned);
        base.target = left["path"].as_str().map(str::to_owned);
        base.detail = Some(json!({"left": left, "right": right}));
        base
    }
}
