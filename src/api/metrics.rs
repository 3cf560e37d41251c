//! `GET /metrics`: every series of the catalogue
//! (`pinkpage_actors::metrics::CATALOGUE`) in Prometheus's text format.
//!
//! The counted series come from the recorder (`crate::metrics`); the rest
//! are read now from their owners: the connection registry, the SSH
//! session slots, the terminal book, the health monitor, the session lock
//! and the journal. A server removed by a reload is simply not asked
//! about any more, so its series go with it.
//!
//! Who may read it: any signed-in user whose account is not limited to
//! some servers' tags (the series name every configured server; a scoped
//! account gets 10003), or anyone on `PINKPAGE_METRICS_BIND`, the
//! separate listener meant for a Prometheus on the same host (loopback
//! unless configured otherwise; see `startup`).

use actix_web::{get, web, HttpResponse};
use pinkpage_actors::access::{Role, ServerScope};
use pinkpage_actors::health::monitor::GetHealth;
use pinkpage_actors::lock::GetStatus;
use pinkpage_actors::metrics as m;
use pinkpage_actors::{AppError, ErrorCode};

use super::error::ApiError;
use crate::auth::Caller;
use crate::metrics::Exposition;
use crate::state::AppState;

/// The text format's content type.
const CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

/// Every metric, in Prometheus's text exposition format (see
/// docs/operations.md for the list). Needs a signed-in account not
/// limited to some servers' tags.
#[utoipa::path(tag = "daemon", responses(
    (status = 200, description = "The metrics (text/plain; version=0.0.4)", body = String, content_type = "text/plain"),
    (status = 403, description = "10003: the account is limited to some servers", body = super::error::ErrorResponse),
))]
#[get("/metrics")]
pub async fn metrics(state: web::Data<AppState>, caller: Caller) -> Result<HttpResponse, ApiError> {
    let Some(p) = &caller.principal else {
        return Err(AppError::with_detail(ErrorCode::Unauthenticated, "sign in first").into());
    };
    // admins use every server whatever their tags (Principal::may_use)
    if p.role < Role::Admin {
        if let ServerScope::Tags(tags) = &p.servers {
            return Err(AppError::with_detail(
                ErrorCode::Forbidden,
                format!(
                    "the metrics name every configured server, and {} may use only servers tagged {}; ask an admin to lift the limit, or read them on PINKPAGE_METRICS_BIND",
                    p.user,
                    tags.join(", ")
                ),
            )
            .into());
        }
    }
    Ok(text(render(&state).await))
}

/// The same, without a credential: the handler of the separate listener
/// (`PINKPAGE_METRICS_BIND`), which serves nothing else.
pub async fn metrics_unauthenticated(state: web::Data<AppState>) -> HttpResponse {
    text(render(&state).await)
}

fn text(body: String) -> HttpResponse {
    HttpResponse::Ok().content_type(CONTENT_TYPE).body(body)
}

/// The whole exposition: the series read now, then the counted ones.
pub async fn render(state: &AppState) -> String {
    let settings = state.settings();
    let mut e = Exposition::default();

    e.family(m::UPTIME_SECONDS)
        .sample(m::UPTIME_SECONDS, &[], state.started.elapsed().as_secs_f64());

    e.family(m::WEBSOCKET_CONNECTIONS);
    for (endpoint, n) in state.connections.count_by_endpoint() {
        e.sample(m::WEBSOCKET_CONNECTIONS, &[("endpoint", endpoint)], n as f64);
    }

    // Slots are kept per host:port; each configured server on one shows
    // its sessions.
    let in_use = state.ssh.sessions.in_use();
    e.family(m::SSH_SESSIONS);
    for (name, spec) in &settings.servers {
        let n = in_use
            .get(&format!("{}:{}", spec.host, spec.port))
            .copied()
            .unwrap_or(0);
        e.sample(m::SSH_SESSIONS, &[("server", name)], n as f64);
    }
    e.family(m::SSH_SESSIONS_WAITING).sample(
        m::SSH_SESSIONS_WAITING,
        &[],
        state.ssh.sessions.waiting() as f64,
    );

    let (mut attached, mut detached) = (0usize, 0usize);
    for t in state.terminals.all() {
        if t.stats.attached.load(std::sync::atomic::Ordering::Relaxed) > 0 {
            attached += 1;
        } else {
            detached += 1;
        }
    }
    e.family(m::TERMINALS)
        .sample(m::TERMINALS, &[("state", "attached")], attached as f64)
        .sample(m::TERMINALS, &[("state", "detached")], detached as f64);

    // A monitor that cannot answer (stopping) leaves the families empty
    // rather than failing the scrape: the rest is still true.
    let health = state.health.send(GetHealth).await.unwrap_or_default();
    e.family(m::SERVER_UP);
    for s in health.iter() {
        if let Some(up) = s.is_healthy {
            e.sample(
                m::SERVER_UP,
                &[("server", &s.server_name)],
                if up { 1.0 } else { 0.0 },
            );
        }
    }
    e.family(m::SERVER_LAST_GOOD_CHECK_SECONDS);
    for s in health.iter() {
        if let Some(ms) = s.latency_ms {
            e.sample(
                m::SERVER_LAST_GOOD_CHECK_SECONDS,
                &[("server", &s.server_name)],
                ms / 1000.0,
            );
        }
    }

    let lock = state.session_lock.send(GetStatus).await.ok();
    let held_for = lock
        .as_ref()
        .and_then(|s| s.since.as_deref())
        .and_then(|since| chrono::DateTime::parse_from_rfc3339(since).ok())
        .map(|since| {
            (chrono::Utc::now() - since.with_timezone(&chrono::Utc))
                .num_milliseconds()
                .max(0) as f64
                / 1000.0
        });
    e.family(m::LOCK_HELD).sample(
        m::LOCK_HELD,
        &[],
        if lock.as_ref().is_some_and(|s| s.active) {
            1.0
        } else {
            0.0
        },
    );
    e.family(m::LOCK_HELD_FOR_SECONDS)
        .sample(m::LOCK_HELD_FOR_SECONDS, &[], held_for.unwrap_or(0.0));

    let journal = state.journal.health();
    e.family(m::STORE_UP)
        .sample(m::STORE_UP, &[], if journal.status == "ok" { 1.0 } else { 0.0 });
    e.family(m::JOURNAL_QUEUE_ROWS)
        .sample(m::JOURNAL_QUEUE_ROWS, &[], journal.pending_rows as f64);
    e.family(m::JOURNAL_QUEUE_BYTES)
        .sample(m::JOURNAL_QUEUE_BYTES, &[], journal.pending_bytes as f64);
    e.family(m::JOURNAL_DROPPED_ROWS)
        .sample(m::JOURNAL_DROPPED_ROWS, &[], journal.dropped_rows as f64);

    // glibc's heap; on another C library the families stay empty
    let heap = crate::limits::heap::heap();
    e.family(m::HEAP_IN_USE_BYTES);
    if let Some((in_use, _)) = heap {
        e.sample(m::HEAP_IN_USE_BYTES, &[], in_use as f64);
    }
    e.family(m::HEAP_FREE_BYTES);
    if let Some((_, free)) = heap {
        e.sample(m::HEAP_FREE_BYTES, &[], free as f64);
    }

    let mut text = e.finish();
    text.push_str(&state.metrics.render());
    text
}
