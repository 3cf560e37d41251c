//! The PostgreSQL implementation of the store (`super`), for several
//! instances on one database (`PINKPAGE_DATABASE_URL`, issue 30): the same
//! traits, tables and records as SQLite ([`crate::store::migrations`] has
//! both dialects side by side), the SQL of each domain in its own file
//! here, as in `super::sqlite`.
//!
//! Who owns what: [`PgStore`] owns a small tokio runtime of its own (two
//! threads) and a connection pool (deadpool) whose connections are driven
//! by tasks on that runtime. Every trait method is one task there and one
//! transaction on one pooled connection; the caller (an actix thread, the
//! command line) awaits the task's answer. So the store's connections
//! never depend on which actix worker called first, and nothing of the
//! database runs on an actix event loop. A connection belongs to one task
//! at a time (the pool hands it out and takes it back); nothing else is
//! shared but the read-only [`Chain`].
//!
//! How each promise of `super` is kept here (`docs/architecture.md`,
//! "Storage"):
//! - **One transaction per method**: each method opens one transaction
//!   (read committed, or stronger where said) and commits it at its end.
//! - **A record rejected, the batch kept**: PostgreSQL aborts a whole
//!   transaction at a failed statement, so each record of a batch is
//!   written inside a savepoint of its own ([`settle`]): a record that
//!   breaks a constraint rolls back to it and is [`Applied::Rejected`];
//!   any other failure fails the batch (`Err`, nothing written).
//! - **Order per stream**: a batch is written in order in its one
//!   transaction; the audit chain's appends are serialised by a row lock
//!   on the chain's record (`audit_chain`), so ids and links follow commit
//!   order across instances.
//! - **Ids from the store**: identity columns, and the audit ids assigned
//!   under that lock.

pub mod accounts;
pub mod audit;
pub mod audit_chain;
mod backup;
mod batch;
#[cfg(test)]
mod contract_tests;
mod health;
pub mod migrations;
mod recordings;
mod retention;
mod temp_files;
#[cfg(test)]
pub(crate) mod testing;
pub(crate) mod tx;
mod workflows;

use std::future::Future;
use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use deadpool_postgres::{Manager, ManagerConfig, Pool, RecyclingMethod};
use pinkpage_actors::{AppError, ErrorCode};
use tokio_postgres::NoTls;

use self::tx::{db_error, describe, pool_error};
use super::{unavailable, StoreFuture};
use crate::store::chain::{Chain, KeyFile};
use crate::store::OpenError;

/// Connections the pool keeps at most: the journal's writers, the REST
/// reads and the account refresher at once, with room to spare; several
/// instances share the server's `max_connections`.
const POOL_SIZE: usize = 8;

/// How long a call waits for a free connection, or for a new one to
/// connect, before it fails with 40000 (store unavailable).
const POOL_WAIT: Duration = Duration::from_secs(5);

/// The runtime the store's tasks and connections run on. Shut down in the
/// background when the store goes: dropping a runtime from inside another
/// one (an actix thread) would panic.
struct Threads(Option<tokio::runtime::Runtime>);

impl Threads {
    fn handle(&self) -> &tokio::runtime::Handle {
        self.0
            .as_ref()
            .expect("the store's runtime lives as long as the store")
            .handle()
    }
}

impl Drop for Threads {
    fn drop(&mut self) {
        if let Some(rt) = self.0.take() {
            rt.shutdown_background();
        }
    }
}

/// The PostgreSQL store. See the module docs.
pub struct PgStore {
    pool: Pool,
    /// Moves on each `NOTIFY pinkpage_access` any instance sends
    /// ([`listen`]); the sender is the listening task's.
    access_changes: tokio::sync::watch::Receiver<u64>,
    /// Where the database is, for `pg_dump` (holds the password).
    config: tokio_postgres::Config,
    /// The audit chain's key and start, for the appends.
    chain: Arc<Chain>,
    threads: Threads,
}

impl std::fmt::Debug for PgStore {
    // the pool's configuration holds the password: never printed
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PgStore").finish_non_exhaustive()
    }
}

impl PgStore {
    /// Connects to the database at `url` (a `postgres://` URL), brings its
    /// schema up to date (one instance at a time: the others wait on an
    /// advisory lock) and opens its audit chain with the key in
    /// `key_file`, sealing at the first start. Callable from any runtime
    /// or none: the work runs on the store's own.
    pub fn open(url: &str, key_file: &KeyFile) -> Result<Arc<PgStore>, OpenError> {
        let config = tokio_postgres::Config::from_str(url).map_err(|e| {
            OpenError::Database(AppError::with_detail(
                ErrorCode::Database,
                // the parser's message never repeats the URL (it may hold a password)
                format!("PINKPAGE_DATABASE_URL is not a PostgreSQL URL: {e}"),
            ))
        })?;
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .thread_name("pinkpage-pg")
            .enable_all()
            .build()
            .map_err(|e| {
                OpenError::Database(unavailable(format!("cannot start the store's threads: {e}")))
            })?;
        let threads = Threads(Some(rt));
        let manager = Manager::from_config(
            config.clone(),
            NoTls,
            ManagerConfig {
                recycling_method: RecyclingMethod::Fast,
            },
        );
        let pool = Pool::builder(manager)
            .max_size(POOL_SIZE)
            .runtime(deadpool_postgres::Runtime::Tokio1)
            .wait_timeout(Some(POOL_WAIT))
            .create_timeout(Some(POOL_WAIT))
            .recycle_timeout(Some(POOL_WAIT))
            .build()
            .map_err(|e| OpenError::Database(unavailable(e)))?;
        let key_file = key_file.clone();
        let opening = pool.clone();
        let chain = block_on(threads.handle(), async move {
            let mut client = opening.get().await.map_err(pool_error)?;
            migrations::migrate(&mut client)
                .await
                .map_err(|e| OpenError::Database(db_error(e)))?;
            let chain = audit_chain::open_chain(&mut client, &key_file).await?;
            Ok::<_, OpenError>(chain)
        })??;
        let (notify, access_changes) = tokio::sync::watch::channel(0);
        threads.handle().spawn(listen(config.clone(), notify));
        Ok(Arc::new(PgStore {
            pool,
            access_changes,
            config,
            chain: Arc::new(chain),
            threads,
        }))
    }

    /// What moves each time any instance changes access (users, tokens,
    /// sign-in sessions): `AccountStore::changed`.
    pub fn access_changes(&self) -> tokio::sync::watch::Receiver<u64> {
        self.access_changes.clone()
    }

    /// The audit chain.
    pub fn chain(&self) -> &Arc<Chain> {
        &self.chain
    }

    /// Runs `work` with the pool as one task on the store's runtime.
    fn run<T, F, Fut>(&self, work: F) -> StoreFuture<T>
    where
        T: Send + 'static,
        F: FnOnce(Pool) -> Fut,
        Fut: Future<Output = Result<T, AppError>> + Send + 'static,
    {
        let task = self.threads.handle().spawn(work(self.pool.clone()));
        Box::pin(async move {
            task.await
                .map_err(|e| unavailable(format!("a store task failed: {e}")))?
        })
    }
}

/// The channel the access triggers notify on (migration 13).
const ACCESS_CHANNEL: &str = "pinkpage_access";

/// Listens for `NOTIFY pinkpage_access` on a connection of its own, for as
/// long as the store lives (it ends when every receiver is gone or the
/// runtime shuts down), and moves `notify` on each. A lost connection is
/// made again after a second; a change made meanwhile is still seen, by
/// the refresher's own one-second look, and one more move is sent on
/// reconnecting, for what was missed.
async fn listen(config: tokio_postgres::Config, notify: tokio::sync::watch::Sender<u64>) {
    use futures_util::StreamExt;
    loop {
        if notify.is_closed() {
            return;
        }
        match config.connect(NoTls).await {
            Ok((client, mut connection)) => {
                let mut messages = futures_util::stream::poll_fn(move |cx| connection.poll_message(cx));
                let statement = format!("LISTEN {ACCESS_CHANNEL}");
                let ok = {
                    // the connection must be driven while LISTEN runs
                    let mut listening = std::pin::pin!(client.batch_execute(&statement));
                    loop {
                        tokio::select! {
                            done = &mut listening => break done.is_ok(),
                            message = messages.next() => if message.is_none() { break false },
                        }
                    }
                };
                if ok {
                    notify.send_modify(|n| *n += 1);
                    while let Some(message) = messages.next().await {
                        match message {
                            Ok(tokio_postgres::AsyncMessage::Notification(n))
                                if n.channel() == ACCESS_CHANNEL =>
                            {
                                notify.send_modify(|n| *n += 1);
                            }
                            Ok(_) => {}
                            Err(e) => {
                                log::warn!(error = describe(&e); "the access listener's connection failed; listening again");
                                break;
                            }
                        }
                    }
                }
                drop(client);
            }
            Err(e) => log::debug!(error = describe(&e); "the access listener cannot connect yet"),
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
}

/// Runs `work` on `rt` and waits for it on this thread (opening, and the
/// command line). Never awaits inside `rt` itself.
fn block_on<T: Send + 'static>(
    rt: &tokio::runtime::Handle,
    work: impl Future<Output = T> + Send + 'static,
) -> Result<T, OpenError> {
    let (tx, rx) = std::sync::mpsc::channel();
    rt.spawn(async move {
        let _ = tx.send(work.await);
    });
    rx.recv()
        .map_err(|_| OpenError::Database(unavailable("the store's threads stopped")))
}

impl From<deadpool_postgres::PoolError> for OpenError {
    fn from(e: deadpool_postgres::PoolError) -> Self {
        OpenError::Database(pool_error(e))
    }
}

/// One connection to the database at `url` for the command line's
/// read-only commands (`pinkpage audit`): nothing migrated or created.
/// Drive it on the caller's runtime; the error says why, without the URL.
pub async fn reader(url: &str) -> Result<deadpool_postgres::Client, String> {
    let config = tokio_postgres::Config::from_str(url).map_err(|e| format!("not a PostgreSQL URL: {e}"))?;
    let manager = Manager::from_config(
        config,
        NoTls,
        ManagerConfig {
            recycling_method: RecyclingMethod::Fast,
        },
    );
    let pool = Pool::builder(manager)
        .max_size(1)
        .runtime(deadpool_postgres::Runtime::Tokio1)
        .wait_timeout(Some(POOL_WAIT))
        .create_timeout(Some(POOL_WAIT))
        .build()
        .map_err(|e| e.to_string())?;
    pool.get()
        .await
        .map_err(|e| pool_error(e).detail.unwrap_or_default())
}

/// What `pinkpage check-config` says of the database at `url`, read-only
/// (nothing is created or migrated): the server's version and how far its
/// schema is, or why it cannot be used.
pub fn check(url: &str) -> Result<String, String> {
    let config = tokio_postgres::Config::from_str(url).map_err(|e| format!("not a PostgreSQL URL: {e}"))?;
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| e.to_string())?;
    rt.block_on(async move {
        let connecting = tokio::time::timeout(POOL_WAIT, config.connect(NoTls));
        let (client, connection) = connecting
            .await
            .map_err(|_| "no answer within 5 s".to_owned())?
            .map_err(|e| describe(&e))?;
        let driver = tokio::spawn(connection);
        let server: String = client
            .query_one("SHOW server_version", &[])
            .await
            .map_err(|e| describe(&e))?
            .get(0);
        let version = migrations::version_of(&client).await.map_err(|e| describe(&e))?;
        drop(client);
        let _ = driver.await;
        Ok(format!(
            "PostgreSQL {server}, schema at step {version} of {} (a daemon brings it up to date at start)",
            crate::store::migrations::MIGRATIONS.len()
        ))
    })
}

#[cfg(test)]
mod tests {
    use super::testing::TestDatabase;
    use super::*;
    use crate::store::chain::ChainError;
    use crate::store::migrations::MIGRATIONS;

    #[test]
    fn opening_migrates_to_the_last_step_and_a_second_instance_finds_it_done() {
        let db = TestDatabase::new();
        // two instances starting at once: one migrates, the other waits
        // on the advisory lock and finds the schema done
        let (a, b) = std::thread::scope(|s| {
            let a = s.spawn(|| db.open());
            let b = s.spawn(|| db.open());
            (a.join().unwrap(), b.join().unwrap())
        });
        let version = block_on(a.threads.handle(), {
            let pool = a.pool.clone();
            async move { migrations::version(&pool.get().await.unwrap()).await.unwrap() }
        })
        .unwrap();
        assert_eq!(version as usize, MIGRATIONS.len());
        // both have the one chain the first start wrote
        assert_eq!(a.chain().genesis().mac.to_hex(), b.chain().genesis().mac.to_hex());
    }

    /// A change of access through one instance is told to another by the
    /// database (NOTIFY), not found at its next look.
    #[actix::test]
    async fn a_change_of_access_through_one_instance_is_told_to_another() {
        use crate::store::AccountStore;
        let db = TestDatabase::new();
        let (a, b) = (db.open(), db.open());
        let mut told = b.changed().expect("PostgreSQL tells");
        let wait = |told: &mut tokio::sync::watch::Receiver<u64>| {
            let mut told = told.clone();
            async move {
                tokio::time::timeout(Duration::from_secs(10), told.changed())
                    .await
                    .expect("told within the bound")
                    .expect("the listener lives");
                *told.borrow_and_update()
            }
        };
        // one move once it listens
        let listening = wait(&mut told).await;
        told.borrow_and_update();
        let change = tokio::spawn({
            let a = a.clone();
            async move {
                a.add_user("ann".into(), pinkpage_actors::access::Role::Viewer, None, None)
                    .await
                    .unwrap()
            }
        });
        let after = wait(&mut told).await;
        assert!(after > listening, "{after} after {listening}");
        change.await.unwrap();
    }

    #[test]
    fn another_key_is_refused_and_a_bad_url_is_named_without_its_password() {
        let db = TestDatabase::new();
        drop(db.open());
        let other = tempfile::tempdir().unwrap();
        let wrong = KeyFile::new(other.path().join("other.key"));
        wrong.load_or_create().unwrap();
        match PgStore::open(&db.url, &wrong) {
            Err(OpenError::Chain(ChainError::WrongKey { .. })) => {}
            other => panic!("a wrong key must be refused: {other:?}"),
        }
        let bad = PgStore::open("postgres://u:s3cret@[::1", &db.key_file)
            .unwrap_err()
            .to_string();
        assert!(bad.contains("not a PostgreSQL URL"), "{bad}");
        assert!(!bad.contains("s3cret"), "{bad}");
        // a database that is not there: 40000, store unavailable
        let gone = PgStore::open("postgres://postgres@127.0.0.1:1/none", &db.key_file)
            .unwrap_err()
            .to_string();
        assert!(gone.contains("store unavailable"), "{gone}");
        // TLS to PostgreSQL is not supported yet: asking for it is refused,
        // never silently downgraded
        let tls = format!("{}?sslmode=require", db.url);
        let refused = PgStore::open(&tls, &db.key_file).unwrap_err().to_string();
        assert!(refused.contains("TLS"), "{refused}");
    }
}
