//! Error kinds shared by the daemons, mapped once to gRPC codes and once to HTTP statuses.
//!
//! Every crate keeps its own `thiserror` enums; at a process boundary they are turned into an
//! [`Error`] carrying one [`Kind`]. The gRPC mapping matches containerd's `errdefs` package; the
//! HTTP mapping matches dockerd's `errdefs` → status code table.
#![forbid(unsafe_code)]

use std::fmt;

/// What went wrong, in the terms a client can act on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Kind {
    NotFound,
    AlreadyExists,
    InvalidArgument,
    /// The object is in use or in a state that conflicts with the request (HTTP 409).
    Conflict,
    FailedPrecondition,
    Unavailable,
    NotImplemented,
    Internal,
}

/// An error with a kind and a message meant for the client.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct Error {
    pub kind: Kind,
    pub message: String,
}

impl Error {
    pub fn new(kind: Kind, message: impl Into<String>) -> Self {
        Self {
            kind,
            message: message.into(),
        }
    }
    pub fn not_found(message: impl Into<String>) -> Self {
        Self::new(Kind::NotFound, message)
    }
    pub fn already_exists(message: impl Into<String>) -> Self {
        Self::new(Kind::AlreadyExists, message)
    }
    pub fn invalid(message: impl Into<String>) -> Self {
        Self::new(Kind::InvalidArgument, message)
    }
    pub fn conflict(message: impl Into<String>) -> Self {
        Self::new(Kind::Conflict, message)
    }
    pub fn precondition(message: impl Into<String>) -> Self {
        Self::new(Kind::FailedPrecondition, message)
    }
    pub fn unavailable(message: impl Into<String>) -> Self {
        Self::new(Kind::Unavailable, message)
    }
    pub fn unimplemented(message: impl Into<String>) -> Self {
        Self::new(Kind::NotImplemented, message)
    }
    pub fn internal(message: impl Into<String>) -> Self {
        Self::new(Kind::Internal, message)
    }

    /// The HTTP status dockerd uses for this kind.
    pub fn http_status(&self) -> u16 {
        match self.kind {
            Kind::NotFound => 404,
            Kind::AlreadyExists | Kind::Conflict => 409,
            Kind::InvalidArgument => 400,
            Kind::FailedPrecondition => 409,
            Kind::Unavailable => 503,
            Kind::NotImplemented => 501,
            Kind::Internal => 500,
        }
    }
}

impl fmt::Display for Kind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(self, f)
    }
}

impl From<Error> for tonic::Status {
    fn from(e: Error) -> Self {
        let code = match e.kind {
            Kind::NotFound => tonic::Code::NotFound,
            Kind::AlreadyExists => tonic::Code::AlreadyExists,
            Kind::InvalidArgument => tonic::Code::InvalidArgument,
            Kind::Conflict | Kind::FailedPrecondition => tonic::Code::FailedPrecondition,
            Kind::Unavailable => tonic::Code::Unavailable,
            Kind::NotImplemented => tonic::Code::Unimplemented,
            Kind::Internal => tonic::Code::Internal,
        };
        tonic::Status::new(code, e.message)
    }
}

impl From<tonic::Status> for Error {
    fn from(s: tonic::Status) -> Self {
        let kind = match s.code() {
            tonic::Code::NotFound => Kind::NotFound,
            tonic::Code::AlreadyExists => Kind::AlreadyExists,
            tonic::Code::InvalidArgument | tonic::Code::OutOfRange => Kind::InvalidArgument,
            tonic::Code::FailedPrecondition | tonic::Code::Aborted => Kind::FailedPrecondition,
            tonic::Code::Unavailable => Kind::Unavailable,
            tonic::Code::Unimplemented => Kind::NotImplemented,
            _ => Kind::Internal,
        };
        Error::new(kind, s.message().to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grpc_round_trip_keeps_kind() {
        for kind in [
            Kind::NotFound,
            Kind::AlreadyExists,
            Kind::InvalidArgument,
            Kind::Unavailable,
        ] {
            let st: tonic::Status = Error::new(kind, "x").into();
            assert_eq!(Error::from(st).kind, kind);
        }
    }

    #[test]
    fn http_statuses_match_dockerd() {
        assert_eq!(Error::not_found("No such image: x").http_status(), 404);
        assert_eq!(Error::invalid("bad").http_status(), 400);
        assert_eq!(Error::conflict("in use").http_status(), 409);
    }
}
