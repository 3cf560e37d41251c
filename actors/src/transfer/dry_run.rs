//! A transfer's dry run (`scp_transfer_plan`): what it would copy and which
//! files at the destination it would replace, before anything is copied.
//! It lists the source glob as the copy does ([`super::relay`]'s `list`)
//! and looks each name up at the destination; it writes nothing, takes no
//! transfer slot and needs no lock. Both sessions are closed before it
//! answers, whatever the outcome, and the whole look is bounded by
//! [`DRY_RUN_TIMEOUT`].

use std::sync::Arc;
use std::time::Duration;

use futures_util::StreamExt;
use serde::Serialize;

use super::glob::{join, Matcher, SourceGlob};
use super::relay::{failed, list, open_side};
use crate::error::AppError;
use crate::server::{ServerSpec, TransferSpec};
use crate::ssh::SshOptions;

/// The longest a dry run may take, connecting included: a plan that never
/// comes is worse than a clear failure.
pub const DRY_RUN_TIMEOUT: Duration = Duration::from_secs(30);

/// Destination look-ups in flight at once.
const CONCURRENT_LOOKUPS: usize = 16;

/// One file a transfer would copy.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct PlannedCopy {
    /// Its name (in the source directory and the destination's).
    pub name: String,
    /// Its size at the source.
    pub bytes: u64,
    /// The size of the file it would replace at the destination, when one
    /// is there (`None`: a new file).
    pub replaces_bytes: Option<u64>,
}

/// What a transfer would do now.
#[derive(Debug, Clone, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct TransferPlan {
    /// The files, sorted by name.
    pub files: Vec<PlannedCopy>,
    /// Their total size.
    pub bytes: u64,
    /// How many of them replace a file at the destination.
    pub replaces: usize,
}

/// Lists what `spec` would copy from `source` to `destination`, copying
/// nothing. An empty match is a plan with no files (the run itself would
/// refuse it with 24001).
pub async fn dry_run(
    spec: &TransferSpec,
    source: Arc<ServerSpec>,
    destination: Arc<ServerSpec>,
    ssh: Arc<SshOptions>,
) -> Result<TransferPlan, AppError> {
    let glob = SourceGlob::parse(&spec.source_glob).map_err(failed)?;
    let matcher = Matcher::new(&glob.pattern).map_err(failed)?;
    let look = async {
        let (src, dst) = futures_util::join!(
            open_side(source, ssh.clone(), false),
            open_side(destination, ssh, false)
        );
        let plan = match (&src, &dst) {
            (Ok((_, src_sftp, _)), Ok((_, dst_sftp, _))) => {
                look_up(spec, &glob, &matcher, src_sftp, dst_sftp).await
            }
            (Err(e), _) => Err(failed(format!("source server '{}': {e}", spec.source_server))),
            (_, Err(e)) => Err(failed(format!(
                "destination server '{}': {e}",
                spec.destination_server
            ))),
        };
        for (session, sftp, _) in [src, dst].into_iter().flatten() {
            let _ = sftp.close().await;
            let _ = session.disconnect().await;
        }
        plan
    };
    tokio::time::timeout(DRY_RUN_TIMEOUT, look)
        .await
        .unwrap_or_else(|_| {
            Err(failed(format!(
                "no plan within {DRY_RUN_TIMEOUT:?} (a server that accepts but does not answer?)"
            )))
        })
}

async fn look_up(
    spec: &TransferSpec,
    glob: &SourceGlob,
    matcher: &Matcher,
    source: &russh_sftp::client::SftpSession,
    destination: &russh_sftp::client::SftpSession,
) -> Result<TransferPlan, AppError> {
    let files = list(source, glob, matcher, &spec.source_server).await?;
    let dir = spec.destination_dir.as_str();
    let mut copies: Vec<PlannedCopy> = futures_util::stream::iter(files)
        .map(|f| async move {
            // anything there by that name is replaced (the copy renames
            // over it); a lookup that fails is "nothing there"
            let replaces_bytes = destination
                .symlink_metadata(join(dir, &f.name))
                .await
                .ok()
                .map(|m| m.len());
            PlannedCopy {
                name: f.name,
                bytes: f.size,
                replaces_bytes,
            }
        })
        .buffer_unordered(CONCURRENT_LOOKUPS)
        .collect()
        .await;
    copies.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(TransferPlan {
        bytes: copies.iter().map(|c| c.bytes).sum(),
        replaces: copies.iter().filter(|c| c.replaces_bytes.is_some()).count(),
        files: copies,
    })
}
