//! Results on stdout (one JSON object, or a short table) and errors on stderr.

use std::io::Write;

use crate::error::{CliError, CliResult};

fn stdout_error(e: std::io::Error) -> CliError {
    CliError::Write { path: "<stdout>".into(), message: e.to_string() }
}

/// Prints `value` as one JSON object on stdout.
pub fn json<T: serde::Serialize>(value: &T) -> CliResult<()> {
    let mut out = std::io::stdout().lock();
    serde_json::to_writer(&mut out, value).map_err(|e| stdout_error(e.into()))?;
    writeln!(out).map_err(stdout_error)
}

/// Prints aligned `name  value` rows on stdout.
pub fn table(rows: &[(&str, String)]) -> CliResult<()> {
    let width = rows.iter().map(|(k, _)| k.len()).max().unwrap_or(0);
    let mut out = std::io::stdout().lock();
    for (k, v) in rows {
        writeln!(out, "{k:<width$}  {v}").map_err(stdout_error)?;
    }
    Ok(())
}

/// Prints `error: …` on stderr, on one line.
pub fn error(e: &CliError) {
    let text = e.to_string().replace('\n', " ");
    let _ = writeln!(std::io::stderr().lock(), "error: {text}");
}

/// Prints clap's usage error on one line: the message without its usage and
/// help hints, whitespace collapsed.
pub fn usage_error(rendered: &str) {
    let message = rendered.split("\n\nUsage:").next().unwrap_or(rendered);
    let message = message.split("\n\nFor more information").next().unwrap_or(message);
    let message = message.trim_start_matches("error:").split_whitespace().collect::<Vec<_>>().join(" ");
    let _ = writeln!(std::io::stderr().lock(), "error: {message} (see --help)");
}

/// Writes `warning: <message>` to stderr for each message (stdout stays pure JSON).
pub fn warnings<S: AsRef<str>>(messages: &[S]) {
    let mut err = std::io::stderr().lock();
    for m in messages {
        let _ = writeln!(err, "warning: {}", m.as_ref());
    }
}
