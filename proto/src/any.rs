//! Packing and unpacking `google.protobuf.Any` with containerd's type URLs.
//!
//! containerd's `typeurl` names a protobuf message by its full name without a domain
//! (`containerd.events.TaskExit`, `containerd.runc.v1.Options`); JSON types are registered under
//! explicit URLs, such as the OCI runtime spec ([`SPEC_TYPE_URL`]).

use prost_types::Any;

/// The type URL of an OCI runtime spec carried as JSON bytes.
pub const SPEC_TYPE_URL: &str = "types.containerd.io/opencontainers/runtime-spec/1/Spec";
/// The type URL of an OCI process (the spec of an exec) carried as JSON bytes.
pub const PROCESS_TYPE_URL: &str = "types.containerd.io/opencontainers/runtime-spec/1/Process";
/// The type URL of OCI Linux resources (Tasks.Update) carried as JSON bytes.
pub const LINUX_RESOURCES_TYPE_URL: &str =
    "types.containerd.io/opencontainers/runtime-spec/1/LinuxResources";

/// Why an Any could not be unpacked.
#[derive(Debug)]
pub enum AnyError {
    /// The Any names another type.
    WrongType { expected: String, got: String },
    /// The bytes do not decode as the expected message.
    Decode(prost::DecodeError),
}

impl std::fmt::Display for AnyError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            AnyError::WrongType { expected, got } => {
                write!(f, "type url {got:?} is not {expected:?}")
            }
            AnyError::Decode(e) => write!(f, "decode any: {e}"),
        }
    }
}

impl std::error::Error for AnyError {}

/// The containerd type URL of a message: its full protobuf name.
pub fn type_url<M: prost::Name>() -> String {
    M::full_name()
}

/// Packs a message under its containerd type URL (`containerd.events.TaskExit`).
pub fn pack<M: prost::Message + prost::Name>(msg: &M) -> Any {
    Any {
        type_url: M::full_name(),
        value: msg.encode_to_vec(),
    }
}

/// Packs raw bytes (JSON) under an explicit type URL.
pub fn pack_bytes(type_url: &str, value: Vec<u8>) -> Any {
    Any {
        type_url: type_url.to_string(),
        value,
    }
}

/// Whether the Any's URL names `full_name`, with or without a domain prefix
/// (`containerd.events.TaskExit`, `type.googleapis.com/containerd.events.TaskExit`).
pub fn is<M: prost::Name>(any: &Any) -> bool {
    url_matches(&any.type_url, &M::full_name())
}

fn url_matches(url: &str, full_name: &str) -> bool {
    url == full_name
        || url
            .rsplit_once('/')
            .is_some_and(|(_, name)| name == full_name)
}

/// Unpacks a message, checking the type URL.
pub fn unpack<M: prost::Message + prost::Name + Default>(any: &Any) -> Result<M, AnyError> {
    if !is::<M>(any) {
        return Err(AnyError::WrongType {
            expected: M::full_name(),
            got: any.type_url.clone(),
        });
    }
    M::decode(any.value.as_slice()).map_err(AnyError::Decode)
}

/// The event's short name, as used to pick a decoder (`TaskExit` for `containerd.events.TaskExit`).
pub fn short_name(type_url: &str) -> &str {
    type_url.rsplit(['.', '/']).next().unwrap_or(type_url)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::events::{ImageCreate, TaskExit};

    #[test]
    fn event_type_urls_match_containerd() {
        let any = pack(&TaskExit {
            container_id: "c".into(),
            exit_status: 3,
            ..Default::default()
        });
        assert_eq!(any.type_url, "containerd.events.TaskExit");
        let back: TaskExit = unpack(&any).expect("unpack");
        assert_eq!(back.exit_status, 3);
        assert_eq!(
            type_url::<ImageCreate>(),
            "containerd.services.images.v1.ImageCreate"
        );
        assert_eq!(
            type_url::<crate::runc::Options>(),
            "containerd.runc.v1.Options"
        );
        // A shim's Stats: v1 Metrics on a v1 or hybrid host, v2 Metrics on a unified one.
        assert_eq!(
            type_url::<crate::cgroups::v1::Metrics>(),
            "io.containerd.cgroups.v1.Metrics"
        );
        assert_eq!(
            type_url::<crate::cgroups::v2::Metrics>(),
            "io.containerd.cgroups.v2.Metrics"
        );
    }

    #[test]
    fn unpack_rejects_other_types_and_accepts_domains() {
        let mut any = pack(&TaskExit::default());
        assert!(unpack::<crate::events::TaskStart>(&any).is_err());
        any.type_url = "type.googleapis.com/containerd.events.TaskExit".into();
        assert!(unpack::<TaskExit>(&any).is_ok());
        assert_eq!(short_name(&any.type_url), "TaskExit");
    }
}
