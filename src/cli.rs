//! The command line: `pinkpage` serves; `pinkpage --help` lists commands and
//! settings; `pinkpage check-config` validates the settings and exits.

use crate::settings::SETTINGS;

/// What the command line asked for.
#[derive(Debug, PartialEq, Eq)]
pub enum Command {
    /// Run the daemon (no arguments, or `serve`).
    Serve,
    /// Load and validate settings, print the servers, exit.
    CheckConfig,
    /// Print the help text.
    Help,
    /// Print the version.
    Version,
}

/// Parses the arguments after the program name.
pub fn parse(args: &[String]) -> Result<Command, String> {
    match args.iter().map(String::as_str).collect::<Vec<_>>().as_slice() {
        [] | ["serve"] => Ok(Command::Serve),
        ["check-config"] => Ok(Command::CheckConfig),
        ["-h"] | ["--help"] | ["help"] => Ok(Command::Help),
        ["-V"] | ["--version"] => Ok(Command::Version),
        other => Err(format!("unknown arguments: {}", other.join(" "))),
    }
}

/// The `--help` text, settings included.
pub fn help() -> String {
    let mut out = format!(
        "pinkpage {}: SSH terminals, session lock, server health, batch runs, SFTP and diffs over WebSockets\n\n\
         USAGE:\n    pinkpage [COMMAND]\n\n\
         COMMANDS:\n    serve          run the daemon (the default)\n    \
         check-config   validate the settings and the servers file, list the servers, exit\n    \
         help           print this text\n\n\
         SETTINGS (environment variables; a .env file in the working directory is loaded first):\n",
        env!("CARGO_PKG_VERSION")
    );
    let width = SETTINGS.iter().map(|s| s.name.len()).max().unwrap_or(0);
    for s in SETTINGS {
        out.push_str(&format!(
            "    {:width$}  {} (default: {})\n",
            s.name, s.meaning, s.default
        ));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn no_arguments_means_serve() {
        assert_eq!(parse(&[]), Ok(Command::Serve));
    }

    #[test]
    fn help_lists_every_setting() {
        let text = help();
        for s in SETTINGS {
            assert!(text.contains(s.name), "{}", s.name);
        }
    }

    #[test]
    fn unknown_arguments_are_refused() {
        assert!(parse(&["--frobnicate".into()]).is_err());
    }
}
