//! `pinkpage`: parse the command line; then either run the daemon (load
//! settings, set up logging, serve) or run one account command against the
//! database and exit.

use std::io::Write;
use std::process::ExitCode;

use clap::Parser;
use pinkpage::cli::accounts::{self as commands, CommandError, Console, Db};
use pinkpage::cli::accounts_on_store::{self as on_store, StoreDb};
use pinkpage::cli::{Cli, Command};
use pinkpage::settings::{self, Settings};
use pinkpage::startup::Application;
use pinkpage::store::chain::KeyFile;
use pinkpage::store::OpenError;

fn main() -> ExitCode {
    // before any thread allocates: memory a burst took comes back
    pinkpage::limits::heap::limit_arenas();
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        // --help and --version are "errors" to clap with exit code 0;
        // usage errors exit 2.
        Err(e) => {
            let _ = e.print();
            return ExitCode::from(u8::try_from(e.exit_code()).unwrap_or(2));
        }
    };

    // A missing .env is normal; a broken one is not. The error names the
    // line and variable only: the line may hold a password.
    if let Err(e) = settings::dotenv::load_dotenv() {
        eprintln!("pinkpage: cannot load .env: {e}");
        return ExitCode::FAILURE;
    }
    match cli.command.unwrap_or(Command::Serve) {
        Command::Serve => match load_settings() {
            Ok(settings) => {
                pinkpage::logging::init(settings.log_format);
                serve(settings)
            }
            Err(code) => code,
        },
        Command::CheckConfig => match load_settings() {
            Ok(settings) => check_config(&settings),
            Err(code) => code,
        },
        Command::User(cmd) if settings::database_url_from_env().is_some() => {
            with_store_console(|db, io| Box::pin(on_store::run_user(db, cmd, io)))
        }
        Command::Token(cmd) if settings::database_url_from_env().is_some() => {
            with_store_console(|db, io| Box::pin(on_store::run_token(db, cmd, io)))
        }
        Command::User(cmd) => with_database(|db, io| commands::run_user(db, cmd, io)),
        Command::Token(cmd) => with_database(|db, io| commands::run_token(db, cmd, io)),
        Command::Backup { file } if settings::database_url_from_env().is_some() => {
            with_postgres(|store| async move {
                use pinkpage::store::BackupStore;
                let bytes = store.backup(file.clone()).await?;
                println!(
                    "backed up the PostgreSQL database into {} ({bytes} bytes)",
                    file.display()
                );
                Ok(())
            })
        }
        Command::Backup { file } => {
            let db = settings::db_path_from_env();
            match pinkpage::store::sqlite::backup::backup_into(&db, &file) {
                Ok(bytes) => {
                    println!(
                        "backed up {} into {} ({bytes} bytes)",
                        db.display(),
                        file.display()
                    );
                    ExitCode::SUCCESS
                }
                Err(e) => {
                    eprintln!(
                        "pinkpage: {}",
                        e.detail.unwrap_or_else(|| e.code.message().to_owned())
                    );
                    ExitCode::FAILURE
                }
            }
        }
        Command::Hostkey(cmd) => match load_settings() {
            Ok(settings) => {
                let key_file = KeyFile::new(settings::audit_key_file_from_env());
                let stdout = std::io::stdout();
                match pinkpage::cli::hostkey::run_hostkey(
                    &settings,
                    &settings::db_path_from_env(),
                    &key_file,
                    cmd,
                    &mut stdout.lock(),
                ) {
                    Ok(()) => ExitCode::SUCCESS,
                    Err(e) => {
                        eprintln!("pinkpage: {e}");
                        ExitCode::FAILURE
                    }
                }
            }
            Err(code) => code,
        },
        Command::Audit(cmd) => {
            let key_file = KeyFile::new(settings::audit_key_file_from_env());
            let (stdout, stderr) = (std::io::stdout(), std::io::stderr());
            let (mut out, mut err) = (stdout.lock(), stderr.lock());
            let ran = match settings::database_url_from_env() {
                Some(url) => pinkpage::cli::audit::run_audit_on_postgres(
                    url.expose(),
                    &key_file,
                    cmd,
                    &mut out,
                    &mut err,
                ),
                None => pinkpage::cli::audit::run_audit(
                    &settings::db_path_from_env(),
                    &key_file,
                    cmd,
                    &mut out,
                    &mut err,
                ),
            };
            match ran {
                Ok(true) => ExitCode::SUCCESS,
                Ok(false) => ExitCode::FAILURE,
                Err(e) => {
                    let _ = writeln!(err, "pinkpage: {e}");
                    ExitCode::FAILURE
                }
            }
        }
    }
}

fn load_settings() -> Result<Settings, ExitCode> {
    Settings::from_env().map_err(|e| {
        eprintln!("pinkpage: {e}");
        ExitCode::FAILURE
    })
}

/// Prints what `check-config` has always printed: the servers and transfers.
fn check_config(settings: &Settings) -> ExitCode {
    if let Some(files) = &settings.tls {
        match pinkpage::tls::Certificates::load(&files.cert, &files.key) {
            Ok(certificates) => println!("tls ok: {}", certificates.fingerprint()),
            Err(e) => {
                eprintln!("pinkpage: PINKPAGE_TLS_CERT: {e}");
                return ExitCode::FAILURE;
            }
        }
    }
    if let Some(url) = &settings.database_url {
        match pinkpage::store::postgres::check(url.expose()) {
            Ok(said) => println!("database ok: {said}"),
            Err(e) => {
                eprintln!("pinkpage: PINKPAGE_DATABASE_URL: {e}");
                return ExitCode::FAILURE;
            }
        }
    }
    println!("settings ok; servers:");
    for s in settings.servers.values() {
        println!("  {} {}@{}:{}", s.name, s.username, s.host, s.port);
    }
    for t in settings.transfers.values() {
        println!(
            "  transfer {}: {}:{} -> {}:{}",
            t.name, t.source_server, t.source_glob, t.destination_server, t.destination_dir
        );
    }
    ExitCode::SUCCESS
}

/// Opens the database named by `PINKPAGE_DB` with the audit key of
/// `PINKPAGE_AUDIT_KEY_FILE` (and nothing else of the settings) and runs an
/// account command on it.
fn with_database(run: impl FnOnce(&Db<'_>, &mut Console<'_>) -> Result<(), CommandError>) -> ExitCode {
    let path = settings::db_path_from_env();
    if settings::database_url_from_env().is_some() {
        eprintln!(
            "pinkpage: internal error: the SQLite command path was taken with PINKPAGE_DATABASE_URL set"
        );
        return ExitCode::FAILURE;
    }
    let key_file = KeyFile::new(settings::audit_key_file_from_env());
    let (conn, chain) = match pinkpage::store::sqlite::open_direct(&path, &key_file) {
        Ok(opened) => opened,
        Err(OpenError::Database(e)) => {
            eprintln!("pinkpage: PINKPAGE_DB ({}): {e}", path.display());
            return ExitCode::FAILURE;
        }
        Err(OpenError::Chain(e)) => {
            eprintln!("pinkpage: PINKPAGE_AUDIT_KEY_FILE: {e}");
            return ExitCode::FAILURE;
        }
    };
    let (stdin, stdout, stderr) = (std::io::stdin(), std::io::stdout(), std::io::stderr());
    let mut console = Console {
        stdin: &mut stdin.lock(),
        out: &mut stdout.lock(),
        err: &mut stderr.lock(),
    };
    match run(
        &Db {
            conn: &conn,
            chain: &chain,
        },
        &mut console,
    ) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("pinkpage: {e}");
            ExitCode::FAILURE
        }
    }
}

/// Opens the PostgreSQL store of `PINKPAGE_DATABASE_URL` with the audit key
/// of `PINKPAGE_AUDIT_KEY_FILE` and runs `work` on it (the store runs on
/// threads of its own; this thread only waits).
fn with_postgres<F, Fut>(work: F) -> ExitCode
where
    F: FnOnce(std::sync::Arc<pinkpage::store::postgres::PgStore>) -> Fut,
    Fut: std::future::Future<Output = Result<(), CommandError>>,
{
    let Some(url) = settings::database_url_from_env() else {
        eprintln!("pinkpage: PINKPAGE_DATABASE_URL is not set");
        return ExitCode::FAILURE;
    };
    // the command line's own rows (its audit rows) are no instance's live
    // work: a name no daemon recovers
    let _ = pinkpage::records::set_instance("cli");
    let key_file = KeyFile::new(settings::audit_key_file_from_env());
    let store = match pinkpage::store::postgres::PgStore::open(url.expose(), &key_file) {
        Ok(store) => store,
        Err(OpenError::Database(e)) => {
            eprintln!(
                "pinkpage: PINKPAGE_DATABASE_URL: {}",
                e.detail.unwrap_or_else(|| e.code.message().to_owned())
            );
            return ExitCode::FAILURE;
        }
        Err(OpenError::Chain(e)) => {
            eprintln!("pinkpage: PINKPAGE_AUDIT_KEY_FILE: {e}");
            return ExitCode::FAILURE;
        }
    };
    let rt = match tokio::runtime::Builder::new_current_thread().enable_all().build() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("pinkpage: cannot start a runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match rt.block_on(work(store)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("pinkpage: {e}");
            ExitCode::FAILURE
        }
    }
}

/// [`with_postgres`] for an account command, with the console.
fn with_store_console(
    run: impl for<'a> FnOnce(
        &'a StoreDb,
        &'a mut Console<'a>,
    ) -> std::pin::Pin<
        Box<dyn std::future::Future<Output = Result<(), CommandError>> + 'a>,
    >,
) -> ExitCode {
    with_postgres(|store| async move {
        let db = StoreDb {
            accounts: store.clone(),
            audit: store,
        };
        let (stdin, stdout, stderr) = (std::io::stdin(), std::io::stdout(), std::io::stderr());
        let (mut stdin, mut stdout, mut stderr) = (stdin.lock(), stdout.lock(), stderr.lock());
        let mut console = Console {
            stdin: &mut stdin,
            out: &mut stdout,
            err: &mut stderr,
        };
        run(&db, &mut console).await
    })
}

#[actix_web::main]
async fn serve(settings: Settings) -> ExitCode {
    let app = match Application::build(settings).await {
        Ok(app) => app,
        Err(e) => {
            log::error!(error = e.to_string(); "startup failed");
            eprintln!("pinkpage: {e}");
            return ExitCode::FAILURE;
        }
    };
    // the port is bound and the server accepts: tell systemd (Type=notify)
    pinkpage::systemd::notify(&format!("READY=1\nSTATUS=listening on port {}", app.port()));
    match app.run_until_stopped().await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            log::error!(error = e.to_string(); "server failed");
            ExitCode::FAILURE
        }
    }
}
