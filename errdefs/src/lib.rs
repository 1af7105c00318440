//! Error kinds shared by the daemons, mapped once to gRPC codes and once to HTTP statuses.
//!
//! Every crate keeps its own `thiserror` enums; at a process boundary they are turned into an
//! [`Error`] carrying one [`Kind`]. The gRPC mapping matches containerd's `errdefs` package; the
//! HTTP mapping matches dockerd's `errdefs` → status code table.
#![forbid(unsafe_code)]

use std::fmt;

/// gRPC status codes, with the numbers of `google.rpc.Code` (for servers that write the
/// `grpc-status` trailer themselves, as the shim does).
pub mod code {
    pub const OK: i32 = 0;
    pub const INVALID_ARGUMENT: i32 = 3;
    pub const NOT_FOUND: i32 = 5;
    pub const ALREADY_EXISTS: i32 = 6;
    pub const RESOURCE_EXHAUSTED: i32 = 8;
    pub const FAILED_PRECONDITION: i32 = 9;
    pub const UNIMPLEMENTED: i32 = 12;
    pub const INTERNAL: i32 = 13;
    pub const UNAVAILABLE: i32 = 14;
}

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

    /// The gRPC status code (the numbers of `google.rpc.Code`) containerd's errdefs uses for
    /// this kind. The one mapping: the conversion to `tonic::Status` and the shim's own gRPC
    /// server both take it from here.
    pub fn grpc_code(&self) -> i32 {
        match self.kind {
            Kind::NotFound => code::NOT_FOUND,
            Kind::AlreadyExists => code::ALREADY_EXISTS,
            Kind::InvalidArgument => code::INVALID_ARGUMENT,
            Kind::Conflict | Kind::FailedPrecondition => code::FAILED_PRECONDITION,
            Kind::Unavailable => code::UNAVAILABLE,
            Kind::NotImplemented => code::UNIMPLEMENTED,
            Kind::Internal => code::INTERNAL,
        }
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
        tonic::Status::new(tonic::Code::from_i32(e.grpc_code()), e.message)
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
    fn grpc_codes_are_containerd_s() {
        let code = |kind| tonic::Status::from(Error::new(kind, "x")).code();
        assert_eq!(code(Kind::NotFound), tonic::Code::NotFound);
        assert_eq!(code(Kind::AlreadyExists), tonic::Code::AlreadyExists);
        assert_eq!(code(Kind::InvalidArgument), tonic::Code::InvalidArgument);
        assert_eq!(code(Kind::Conflict), tonic::Code::FailedPrecondition);
        assert_eq!(
            code(Kind::FailedPrecondition),
            tonic::Code::FailedPrecondition
        );
        assert_eq!(code(Kind::Unavailable), tonic::Code::Unavailable);
        assert_eq!(code(Kind::NotImplemented), tonic::Code::Unimplemented);
        assert_eq!(code(Kind::Internal), tonic::Code::Internal);
    }

    #[test]
    fn http_statuses_match_dockerd() {
        assert_eq!(Error::not_found("No such image: x").http_status(), 404);
        assert_eq!(Error::invalid("bad").http_status(), 400);
        assert_eq!(Error::conflict("in use").http_status(), 409);
    }
}
