//! Exit codes and error messages.
//!
//! | code | meaning |
//! | --- | --- |
//! | 0 | success |
//! | 1 | the server refused (a gRPC error other than the ones below), a local failure such as an
//! unreadable file, or an import that rejected records |
//! | 2 | usage: bad flags or arguments (clap also exits 2) |
//! | 3 | unavailable: no endpoint answered in time (`UNAVAILABLE`, `DEADLINE_EXCEEDED`,
//! `CANCELLED`, transport errors) |
//!
//! gRPC errors are printed as `error: <CODE>: <message>` on stderr.

use std::process::ExitCode;

use licstore_client::ClientError;
use tonic::{Code, Status};

/// Exit code for server refusals and local failures.
pub const FAILURE: u8 = 1;
/// Exit code for usage errors.
pub const USAGE: u8 = 2;
/// Exit code when the cluster could not be reached.
pub const UNAVAILABLE: u8 = 3;

/// A usage error found after parsing (conflicting or missing values).
#[derive(Debug)]
pub struct UsageError(pub String);

impl std::fmt::Display for UsageError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for UsageError {}

/// A failure already reported in the output (failed endpoints, rejected records): only this
/// summary line goes to stderr, with the given exit code.
#[derive(Debug)]
pub struct Reported {
    /// The summary line.
    pub message: String,
    /// The exit code.
    pub code: u8,
}

impl std::fmt::Display for Reported {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for Reported {}

/// Shorthand for a [`Reported`] failure as an `anyhow::Error`.
pub fn reported(code: u8, message: impl Into<String>) -> anyhow::Error {
    anyhow::Error::new(Reported {
        message: message.into(),
        code,
    })
}

/// Shorthand for a usage error as an `anyhow::Error`.
pub fn usage(message: impl Into<String>) -> anyhow::Error {
    anyhow::Error::new(UsageError(message.into()))
}

/// The canonical upper-case name of a gRPC code.
pub fn code_name(code: Code) -> &'static str {
    match code {
        Code::Ok => "OK",
        Code::Cancelled => "CANCELLED",
        Code::Unknown => "UNKNOWN",
        Code::InvalidArgument => "INVALID_ARGUMENT",
        Code::DeadlineExceeded => "DEADLINE_EXCEEDED",
        Code::NotFound => "NOT_FOUND",
        Code::AlreadyExists => "ALREADY_EXISTS",
        Code::PermissionDenied => "PERMISSION_DENIED",
        Code::ResourceExhausted => "RESOURCE_EXHAUSTED",
        Code::FailedPrecondition => "FAILED_PRECONDITION",
        Code::Aborted => "ABORTED",
        Code::OutOfRange => "OUT_OF_RANGE",
        Code::Unimplemented => "UNIMPLEMENTED",
        Code::Internal => "INTERNAL",
        Code::Unavailable => "UNAVAILABLE",
        Code::DataLoss => "DATA_LOSS",
        Code::Unauthenticated => "UNAUTHENTICATED",
    }
}

/// Exit code for a gRPC status.
pub fn status_exit_code(status: &Status) -> u8 {
    match status.code() {
        Code::Unavailable | Code::DeadlineExceeded | Code::Cancelled => UNAVAILABLE,
        _ => FAILURE,
    }
}

/// One line describing a gRPC status: `<CODE>: <message>`.
pub fn describe_status(status: &Status) -> String {
    let message = status.message();
    let message = if message.is_empty() {
        "(no message)"
    } else {
        message
    };
    match tls_hint(status) {
        Some(hint) => format!("{}: {message} ({hint})", code_name(status.code())),
        None => format!("{}: {message}", code_name(status.code())),
    }
}

/// What transport errors that usually come from a TLS mismatch most likely mean.
fn tls_hint(status: &Status) -> Option<&'static str> {
    let message = status.message();
    if message.contains("h2 protocol error") {
        Some("the node may speak TLS: give --cacert, or LICSTORE_CACERT")
    } else if status.code() == Code::Unknown && message.ends_with("transport error") {
        Some(
            "a TLS handshake may have failed: check --cacert, and --cert/--key if the node \
             wants client certificates",
        )
    } else {
        None
    }
}

/// Prints `err` on stderr and picks the exit code.
pub fn report(err: &anyhow::Error) -> ExitCode {
    let (line, code) = classify(err);
    eprintln!("error: {line}");
    ExitCode::from(code)
}

fn classify(err: &anyhow::Error) -> (String, u8) {
    for cause in err.chain() {
        if let Some(ClientError::Status(status)) = cause.downcast_ref::<ClientError>() {
            return (describe_status(status), status_exit_code(status));
        }
        if let Some(status) = cause.downcast_ref::<Status>() {
            return (describe_status(status), status_exit_code(status));
        }
        if let Some(r) = cause.downcast_ref::<Reported>() {
            return (r.message.clone(), r.code);
        }
        if cause.downcast_ref::<UsageError>().is_some() {
            return (format!("{err:#}"), USAGE);
        }
        if let Some(e) = cause.downcast_ref::<ClientError>() {
            return (e.to_string(), USAGE);
        }
    }
    (format!("{err:#}"), FAILURE)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn errors_map_to_exit_codes() {
        let cases: [(anyhow::Error, &str, u8); 7] = [
            (
                reported(UNAVAILABLE, "1 of 3 endpoints failed"),
                "1 of 3 endpoints failed",
                UNAVAILABLE,
            ),
            (
                ClientError::Status(Status::not_found("no such license")).into(),
                "NOT_FOUND: no such license",
                FAILURE,
            ),
            (
                ClientError::Status(Status::unavailable("down")).into(),
                "UNAVAILABLE: down",
                UNAVAILABLE,
            ),
            (
                anyhow::Error::new(Status::deadline_exceeded("")).context("get"),
                "DEADLINE_EXCEEDED: (no message)",
                UNAVAILABLE,
            ),
            (usage("--holder is required"), "--holder is required", USAGE),
            (ClientError::NoEndpoints.into(), "no endpoints given", USAGE),
            (
                anyhow::anyhow!("open x: missing"),
                "open x: missing",
                FAILURE,
            ),
        ];
        for (err, line, code) in cases {
            assert_eq!(classify(&err), (line.to_owned(), code));
        }
    }

    #[test]
    fn transport_errors_that_smell_of_tls_get_a_hint() {
        let cases = [
            (Status::internal("h2 protocol error: http2 error"), true),
            (Status::unknown("transport error"), true),
            (Status::unavailable("tcp connect error"), false),
            (Status::unknown("something else"), false),
        ];
        for (status, hinted) in cases {
            assert_eq!(
                describe_status(&status).contains("--cacert"),
                hinted,
                "{status:?}"
            );
        }
    }
}
