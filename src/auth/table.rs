//! The access table: what every route and every WebSocket message type
//! needs. This is the one place that decides; the admission middleware
//! reads [`route_need`], the WebSocket connection reads [`message_need`],
//! and `docs/security.md` carries [`markdown`] verbatim (a unit test keeps
//! them equal; an integration test walks the OpenAPI document and every
//! WebSocket type against the page).
//!
//! Server scope (an operator limited to some tags) is the second question,
//! asked wherever a server name is resolved (`ServerRef::resolve`).

use actix_web::http::Method;
use pinkpage_actors::access::Need;

/// One REST route: method, the route pattern as actix-web matches it, what
/// it needs, and why (shown in the docs).
pub struct RouteRule {
    /// HTTP method.
    pub method: &'static str,
    /// The route pattern (`/api/v1/servers/{name}/check`).
    pub pattern: &'static str,
    /// What the caller must be.
    pub need: Need,
    /// One line for the docs.
    pub note: &'static str,
}

/// One WebSocket message type of one endpoint.
pub struct MessageRule {
    /// The endpoint (`/ws/v1/stub`).
    pub endpoint: &'static str,
    /// The frame's `type`.
    pub kind: &'static str,
    /// What the caller must be.
    pub need: Need,
}

const fn r(method: &'static str, pattern: &'static str, need: Need, note: &'static str) -> RouteRule {
    RouteRule {
        method,
        pattern,
        need,
        note,
    }
}

const fn m(endpoint: &'static str, kind: &'static str, need: Need) -> MessageRule {
    MessageRule { endpoint, kind, need }
}

use Need::{Admin, Anyone, Operator, Viewer};

/// Every REST route and page. A route missing here needs a signed-in
/// viewer (so an unknown path answers 401 to a stranger, revealing
/// nothing), and the route-walking test fails on it.
pub const ROUTES: &[RouteRule] = &[
    r(
        "GET",
        "/api/v1/health",
        Anyone,
        "daemon up/version; no server detail",
    ),
    r("GET", "/api/v1/errors", Anyone, "the error catalogue"),
    r(
        "GET",
        "/metrics",
        Viewer,
        "Prometheus metrics (an account limited to some servers' tags: 10003; PINKPAGE_METRICS_BIND serves them without a credential)",
    ),
    r(
        "POST",
        "/api/v1/auth/login",
        Anyone,
        "sign in (throttled, audited)",
    ),
    r(
        "POST",
        "/api/v1/auth/logout",
        Anyone,
        "end the caller's sign-in, if any",
    ),
    r("GET", "/api/v1/auth/me", Viewer, "who the caller is"),
    r(
        "GET",
        "/api/v1/health/servers",
        Viewer,
        "live health of every server",
    ),
    r(
        "GET",
        "/api/v1/health/servers/{name}",
        Viewer,
        "one server's health",
    ),
    r(
        "GET",
        "/api/v1/health/servers/{name}/events",
        Viewer,
        "health transitions",
    ),
    r("GET", "/api/v1/servers", Viewer, "configured servers"),
    r(
        "POST",
        "/api/v1/servers/{name}/check",
        Operator,
        "check a server now (its tags)",
    ),
    r(
        "GET",
        "/api/v1/servers/{name}/host-key",
        Admin,
        "the host key a server offers now beside the trusted ones (its tags)",
    ),
    r(
        "POST",
        "/api/v1/servers/{name}/host-key/accept",
        Admin,
        "trust a changed host key, named by its fingerprint (its tags; audited)",
    ),
    r("GET", "/api/v1/session", Viewer, "who holds the session lock"),
    r(
        "DELETE",
        "/api/v1/session",
        Admin,
        "force release of the session lock",
    ),
    r("GET", "/api/v1/transfers", Viewer, "configured transfers"),
    r(
        "GET",
        "/api/v1/transfers/runs",
        Viewer,
        "the last transfer runs on the caller's servers",
    ),
    r(
        "POST",
        "/api/v1/transfers/{name}/plan",
        Operator,
        "a transfer's dry run: what it would copy and replace",
    ),
    r("GET", "/api/v1/workflows", Viewer, "configured workflows"),
    r(
        "POST",
        "/api/v1/workflows/{name}/plan",
        Viewer,
        "what a run would do (its servers' tags)",
    ),
    r(
        "POST",
        "/api/v1/workflows/{name}/runs",
        Operator,
        "start a workflow run (its servers' tags)",
    ),
    r(
        "GET",
        "/api/v1/workflows/runs",
        Viewer,
        "workflow run history (runs on the reader's servers' tags)",
    ),
    r(
        "GET",
        "/api/v1/workflows/runs/{run_id}",
        Viewer,
        "one workflow run (404 off the reader's servers' tags)",
    ),
    r(
        "POST",
        "/api/v1/workflows/runs/{run_id}/confirm",
        Operator,
        "confirm a run's pause (its starter or an admin; its servers' tags)",
    ),
    r(
        "POST",
        "/api/v1/workflows/runs/{run_id}/cancel",
        Operator,
        "cancel a run (its starter or an admin; its servers' tags)",
    ),
    r(
        "GET",
        "/api/v1/bmx4/runs",
        Viewer,
        "batch run history (runs on the reader's servers' tags)",
    ),
    r(
        "GET",
        "/api/v1/bmx4/runs/{run_id}",
        Viewer,
        "one batch run (404 off the reader's servers' tags)",
    ),
    r(
        "GET",
        "/api/v1/bmx5/files",
        Operator,
        "download a file (its server's tags)",
    ),
    r(
        "PUT",
        "/api/v1/bmx5/files",
        Operator,
        "upload a file (its server's tags)",
    ),
    r(
        "POST",
        "/api/v1/diff/files",
        Operator,
        "compare two files (both servers' tags)",
    ),
    r(
        "POST",
        "/api/v1/diff/dirs",
        Operator,
        "compare two directories (both servers' tags)",
    ),
    r(
        "POST",
        "/api/v1/diff/command",
        Operator,
        "compare command output (both servers' tags)",
    ),
    r("GET", "/api/v1/audit", Admin, "the audit trail, filtered"),
    r(
        "GET",
        "/api/v1/audit/export",
        Admin,
        "the audit trail as JSON lines from an id on (for a SIEM)",
    ),
    r("GET", "/api/v1/users", Admin, "list accounts"),
    r("POST", "/api/v1/users", Admin, "create an account"),
    r(
        "PATCH",
        "/api/v1/users/{name}",
        Admin,
        "change role, servers, password, disabled",
    ),
    r(
        "GET",
        "/api/v1/tokens",
        Admin,
        "list API tokens (never their secrets)",
    ),
    r(
        "POST",
        "/api/v1/tokens",
        Admin,
        "create an API token (shown once)",
    ),
    r("DELETE", "/api/v1/tokens/{id}", Admin, "revoke an API token"),
    r(
        "GET",
        "/ws/v1/stub",
        Viewer,
        "WebSocket upgrade; each message as below",
    ),
    r(
        "GET",
        "/ws/v1/bmx4",
        Viewer,
        "WebSocket upgrade; each message as below",
    ),
    r(
        "GET",
        "/ws/v1/bmx5",
        Viewer,
        "WebSocket upgrade; each message as below",
    ),
    r(
        "GET",
        "/ws/v1/diff",
        Viewer,
        "WebSocket upgrade; each message as below",
    ),
    r(
        "GET",
        "/ws/v1/terminal",
        Viewer,
        "WebSocket upgrade; each message as below",
    ),
    r(
        "GET",
        "/api/v1/ptys",
        Viewer,
        "running PTYs the caller may watch (admins: all; others: their own and terminals shared with them)",
    ),
    r(
        "GET",
        "/api/v1/recordings",
        Viewer,
        "recordings of PTYs the caller may read (admins: all; others: their own on servers in their scope)",
    ),
    r(
        "GET",
        "/api/v1/recordings/{id}",
        Viewer,
        "one recording's asciicast file (admins: any; others: their own on servers in their scope, 10003 otherwise)",
    ),
    r("DELETE", "/api/v1/recordings/{id}", Admin, "delete a finished recording (audited)"),
    r(
        "POST",
        "/api/v1/admin/backup",
        Admin,
        "write a consistent copy of the database into PINKPAGE_BACKUP_DIR (audited)",
    ),
    r(
        "POST",
        "/api/v1/admin/reload",
        Admin,
        "read the servers file and .env again and apply what can change live, as SIGHUP does (audited)",
    ),
    r("GET", "/api/v1/command-rules", Viewer, "the command rules in full, and the default action"),
    r(
        "GET",
        "/api/v1/command-reviews",
        Viewer,
        "held commands the caller may answer (its rule's approvers, else admins) and the caller's own",
    ),
    r(
        "POST",
        "/api/v1/command-reviews/{held_id}",
        Viewer,
        "approve or reject a held command: only its rule's approvers (else admins), never the requester (55005, 55003)",
    ),
    r("GET", "/", Anyone, "redirect to the console"),
    r("GET", "/ui", Anyone, "redirect to the console"),
    r("GET", "/favicon.ico", Anyone, "the console's icon"),
    r(
        "GET",
        "/ui/{path:.*}",
        Anyone,
        "the console's static files (it signs in itself)",
    ),
    r("GET", "/swagger/docs", Anyone, "Swagger UI"),
    r("GET", "/swagger/docs/{_:.*}", Anyone, "Swagger UI"),
    r("GET", "/api-docs/openapi.json", Anyone, "the OpenAPI document"),
];

/// Every WebSocket message type (`ping` is answered for anyone connected).
pub const MESSAGES: &[MessageRule] = &[
    m("/ws/v1/stub", "start_session", Operator),
    m("/ws/v1/stub", "end_session", Operator),
    m("/ws/v1/stub", "ssh_command", Operator),
    m("/ws/v1/stub", "command_review", Viewer),
    m("/ws/v1/stub", "ssh_input", Operator),
    m("/ws/v1/stub", "resize", Operator),
    m("/ws/v1/stub", "cancel", Operator),
    m("/ws/v1/stub", "scp_transfer", Operator),
    m("/ws/v1/stub", "scp_transfer_plan", Operator),
    m("/ws/v1/stub", "workflow_plan", Viewer),
    m("/ws/v1/stub", "workflow_run", Operator),
    m("/ws/v1/stub", "workflow_confirm", Operator),
    m("/ws/v1/stub", "workflow_watch", Operator),
    m("/ws/v1/bmx4", "batch_execute", Operator),
    m("/ws/v1/bmx4", "batch_cancel", Operator),
    m("/ws/v1/bmx5", "sftp_list", Operator),
    m("/ws/v1/bmx5", "sftp_stat", Operator),
    m("/ws/v1/bmx5", "sftp_mkdir", Operator),
    m("/ws/v1/bmx5", "sftp_remove", Operator),
    m("/ws/v1/bmx5", "sftp_rename", Operator),
    m("/ws/v1/bmx5", "sftp_upload", Operator),
    m("/ws/v1/bmx5", "sftp_download", Operator),
    m("/ws/v1/bmx5", "script_execute", Operator),
    m("/ws/v1/bmx5", "script_cancel", Operator),
    m("/ws/v1/diff", "diff_files", Operator),
    m("/ws/v1/diff", "diff_dirs", Operator),
    m("/ws/v1/diff", "diff_command", Operator),
    // operator terminals: the owner or a co-typist (shares are judged per
    // terminal, `ws::terminal::access`); watching needs the PTY's owner,
    // a share of it, or an admin
    m("/ws/v1/terminal", "terminal_open", Operator),
    // input from anyone but the owner or a co-typist (both operators) is
    // refused per terminal, a watcher's with its own code (54003)
    m("/ws/v1/terminal", "terminal_input", Viewer),
    m("/ws/v1/terminal", "terminal_resize", Viewer),
    m("/ws/v1/terminal", "terminal_close", Operator),
    m("/ws/v1/terminal", "terminal_attach", Operator),
    m("/ws/v1/terminal", "terminal_detach", Viewer),
    m("/ws/v1/terminal", "terminal_list", Viewer),
    m("/ws/v1/terminal", "terminal_share", Operator),
    m("/ws/v1/terminal", "terminal_unshare", Operator),
    m("/ws/v1/terminal", "terminal_watch", Viewer),
    m("/ws/v1/terminal", "terminal_unwatch", Viewer),
];

/// What `method` on the route `pattern` needs; a route the table does not
/// name needs a viewer.
pub fn route_need(method: &Method, pattern: Option<&str>) -> Need {
    let Some(pattern) = pattern else {
        return Viewer;
    };
    ROUTES
        .iter()
        .find(|r| r.pattern == pattern && r.method == method.as_str())
        .map(|r| r.need)
        .unwrap_or(Viewer)
}

/// The REST routes that start new remote work (commands, transfers,
/// batch, SFTP changes, scripts, diffs, workflows): refused with 40000
/// while audit rows cannot be written (WAVE2, "Audit when the store
/// fails"). Reads of the daemon's own state, and work already running
/// (input, confirmations, cancels), are not.
pub const NEW_WORK_ROUTES: &[(&str, &str)] = &[
    ("POST", "/api/v1/workflows/{name}/runs"),
    // a change of trust that could not be audited must not happen
    ("POST", "/api/v1/servers/{name}/host-key/accept"),
    ("PUT", "/api/v1/bmx5/files"),
    ("POST", "/api/v1/diff/files"),
    ("POST", "/api/v1/diff/dirs"),
    ("POST", "/api/v1/diff/command"),
];

/// The WebSocket message types that start new remote work; as
/// [`NEW_WORK_ROUTES`].
pub const NEW_WORK_MESSAGES: &[(&str, &str)] = &[
    ("/ws/v1/stub", "ssh_command"),
    ("/ws/v1/stub", "scp_transfer"),
    ("/ws/v1/stub", "workflow_run"),
    ("/ws/v1/bmx4", "batch_execute"),
    ("/ws/v1/bmx5", "sftp_mkdir"),
    ("/ws/v1/bmx5", "sftp_remove"),
    ("/ws/v1/bmx5", "sftp_rename"),
    ("/ws/v1/bmx5", "sftp_upload"),
    ("/ws/v1/bmx5", "script_execute"),
    ("/ws/v1/diff", "diff_files"),
    ("/ws/v1/diff", "diff_dirs"),
    ("/ws/v1/diff", "diff_command"),
    ("/ws/v1/terminal", "terminal_open"),
];

/// Whether this REST route starts new remote work.
pub fn route_starts_work(method: &Method, pattern: Option<&str>) -> bool {
    pattern.is_some_and(|p| NEW_WORK_ROUTES.contains(&(method.as_str(), p)))
}

/// Whether this WebSocket message starts new remote work.
pub fn message_starts_work(endpoint: &str, kind: &str) -> bool {
    NEW_WORK_MESSAGES.contains(&(endpoint, kind))
}

/// What message `kind` on `endpoint` needs; a type the table does not name
/// needs an admin (a new type cannot be used before it is classified).
pub fn message_need(endpoint: &str, kind: &str) -> Need {
    MESSAGES
        .iter()
        .find(|m| m.endpoint == endpoint && m.kind == kind)
        .map(|m| m.need)
        .unwrap_or(Admin)
}

fn cell(need: Need, role: Need) -> &'static str {
    if need <= role {
        "yes"
    } else {
        "no"
    }
}

/// The table as it appears in `docs/security.md` (between the
/// `access-table` markers).
pub fn markdown() -> String {
    let mut out = String::from(
        "| method | route | anonymous | viewer | operator | admin | notes |\n|---|---|---|---|---|---|---|\n",
    );
    for r in ROUTES {
        out.push_str(&format!(
            "| {} | `{}` | {} | {} | {} | {} | {} |\n",
            r.method,
            r.pattern,
            cell(r.need, Anyone),
            cell(r.need, Viewer),
            cell(r.need, Operator),
            cell(r.need, Admin),
            r.note
        ));
    }
    out.push_str("\n| endpoint | message type | viewer | operator | admin |\n|---|---|---|---|---|\n");
    for m in MESSAGES {
        out.push_str(&format!(
            "| `{}` | `{}` | {} | {} | {} |\n",
            m.endpoint,
            m.kind,
            cell(m.need, Viewer),
            cell(m.need, Operator),
            cell(m.need, Admin)
        ));
    }
    out.push_str("\nWhile audit rows cannot be written, these start no new remote work: they answer 40000 (unless `PINKPAGE_AUDIT_FAIL_OPEN=true`):\n");
    for (method, pattern) in NEW_WORK_ROUTES {
        out.push_str(&format!("- {method} `{pattern}`\n"));
    }
    for (endpoint, kind) in NEW_WORK_MESSAGES {
        out.push_str(&format!("- `{endpoint}` `{kind}`\n"));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn docs_security_md_carries_the_table() {
        let doc = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/docs/security.md"))
            .expect("docs/security.md");
        let start = doc.find("<!-- access-table:start -->\n").expect("start marker")
            + "<!-- access-table:start -->\n".len();
        let end = doc.find("<!-- access-table:end -->").expect("end marker");
        assert_eq!(
            &doc[start..end],
            markdown(),
            "docs/security.md's table differs from src/auth/table.rs; paste markdown() there"
        );
    }

    /// `cargo test --lib print_access_table -- --ignored --nocapture`
    /// prints the table to paste into docs/security.md.
    #[test]
    #[ignore]
    fn print_access_table() {
        print!("{}", markdown());
    }

    #[test]
    fn new_work_names_only_rows_of_the_table() {
        for (method, pattern) in NEW_WORK_ROUTES {
            assert!(
                ROUTES
                    .iter()
                    .any(|r| r.method == *method && r.pattern == *pattern),
                "{method} {pattern}"
            );
        }
        for (endpoint, kind) in NEW_WORK_MESSAGES {
            assert!(
                MESSAGES
                    .iter()
                    .any(|m| m.endpoint == *endpoint && m.kind == *kind),
                "{endpoint} {kind}"
            );
        }
    }

    #[test]
    fn unknown_routes_and_types_fail_closed() {
        assert_eq!(route_need(&Method::GET, None), Viewer);
        assert_eq!(route_need(&Method::POST, Some("/api/v1/health")), Viewer);
        assert_eq!(message_need("/ws/v1/stub", "launch"), Admin);
    }
}
