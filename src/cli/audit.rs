//! Runs `pinkpage audit head` and `pinkpage audit verify [--head H]`
//! against the database, read-only, beside a running daemon or without
//! one (docs/security.md, "Tamper evidence"). Both read the key file as
//! the daemon does: it must be there, owner-only, and the chain's.

use std::io::Write;
use std::path::Path;

use super::AuditCommand;
use crate::store::chain::{ChainError, KeyFile};
use crate::store::sqlite::audit_chain;

/// Why an audit command could not answer; `main` prints it and exits 1.
#[derive(Debug, thiserror::Error)]
pub enum AuditError {
    /// The database or the key could not be read.
    #[error(transparent)]
    Chain(#[from] ChainError),
    /// Writing the output failed.
    #[error("cannot write the output: {0}")]
    Output(#[from] std::io::Error),
}

/// Runs one `audit` command; `Ok(false)` when the chain did not verify
/// (said on `err`).
pub fn run_audit(
    db: &Path,
    key_file: &KeyFile,
    cmd: AuditCommand,
    out: &mut dyn Write,
    err: &mut dyn Write,
) -> Result<bool, AuditError> {
    let mut conn = audit_chain::open_read_only(db)?;
    match cmd {
        AuditCommand::Head => {
            writeln!(out, "{}", audit_chain::head(&conn, key_file)?)?;
            Ok(true)
        }
        AuditCommand::Verify { head } => {
            let found = audit_chain::verify(&mut conn, key_file, head)?;
            report(found, head, key_file, out, err)
        }
    }
}

/// Runs one `audit` command on the PostgreSQL database at `url`
/// (`PINKPAGE_DATABASE_URL`), read-only: one connection, nothing migrated
/// or created, beside running instances.
pub fn run_audit_on_postgres(
    url: &str,
    key_file: &KeyFile,
    cmd: AuditCommand,
    out: &mut dyn Write,
    err: &mut dyn Write,
) -> Result<bool, AuditError> {
    use crate::store::postgres::{audit_chain as pg, reader};
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| ChainError::Store(e.to_string()))?;
    rt.block_on(async {
        let mut client = reader(url).await.map_err(ChainError::Store)?;
        match cmd {
            AuditCommand::Head => {
                writeln!(out, "{}", pg::head(&client, key_file).await?)?;
                Ok(true)
            }
            AuditCommand::Verify { head } => {
                let found = pg::verify(&mut client, key_file, head).await?;
                report(found, head, key_file, out, err)
            }
        }
    })
}

/// Says what verifying found; `Ok(false)` when the chain did not verify.
fn report(
    found: crate::store::chain::Verification,
    head: Option<crate::store::chain::Head>,
    key_file: &KeyFile,
    out: &mut dyn Write,
    err: &mut dyn Write,
) -> Result<bool, AuditError> {
    let mut good = true;
    if !found.key_matches {
        good = false;
        writeln!(
            err,
            "audit chain record: its key check value is not this key's ({}): the key is not the one that chained the trail, or the chain record was changed",
            key_file.path().display()
        )?;
    }
    match found.chain {
        Ok(v) => {
            writeln!(
                out,
                "audit chain verified: {} linked row(s) after row {}; head {}",
                v.rows, v.start.id, v.head
            )?;
            if let Some(given) = head.filter(|h| !v.head_checked && h.id < v.start.id) {
                writeln!(
                    out,
                    "the head given (row {}) is older than the chain's start (row {}, after a retention cut): it could not be compared",
                    given.id, v.start.id
                )?;
            }
        }
        Err(broken) => {
            good = false;
            writeln!(err, "audit chain broken: {broken}")?;
        }
    }
    Ok(good)
}
