//! `pinkpage`: load settings, set up logging, run the daemon.

use std::process::ExitCode;

use pinkpage::cli::{self, Command};
use pinkpage::settings::Settings;
use pinkpage::startup::Application;

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let command = match cli::parse(&args) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("pinkpage: {e}\n\n{}", cli::help());
            return ExitCode::from(2);
        }
    };
    match command {
        Command::Help => {
            print!("{}", cli::help());
            return ExitCode::SUCCESS;
        }
        Command::Version => {
            println!("pinkpage {}", env!("CARGO_PKG_VERSION"));
            return ExitCode::SUCCESS;
        }
        Command::Serve | Command::CheckConfig => {}
    }

    // A missing .env is normal; a broken one is not.
    if let Err(e) = dotenvy::dotenv() {
        if !e.not_found() {
            eprintln!("pinkpage: cannot load .env: {e}");
            return ExitCode::FAILURE;
        }
    }
    let settings = match Settings::from_env() {
        Ok(s) => s,
        Err(e) => {
            eprintln!("pinkpage: {e}");
            return ExitCode::FAILURE;
        }
    };
    if command == Command::CheckConfig {
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
        return ExitCode::SUCCESS;
    }
    pinkpage::logging::init(settings.log_format);
    serve(settings)
}

#[actix_web::main]
async fn serve(settings: Settings) -> ExitCode {
    let app = match Application::build(settings) {
        Ok(app) => app,
        Err(e) => {
            log::error!(error = e.to_string(); "startup failed");
            eprintln!("pinkpage: {e}");
            return ExitCode::FAILURE;
        }
    };
    match app.run_until_stopped().await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            log::error!(error = e.to_string(); "server failed");
            ExitCode::FAILURE
        }
    }
}
