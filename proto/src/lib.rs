//! Generated gRPC types: the containerd v1 API and the shim task API. Only this crate knows protobuf.
//!
//! Module paths mirror the protobuf packages under [`containerd`]; the short re-exports below are
//! what the other crates use (`proto::services::tasks`, `proto::types`, `proto::shim`, ...).
//! `grpc.health.v1` comes from the `tonic-health` crate.
#![forbid(unsafe_code)]
#![allow(clippy::all, unreachable_pub)]

pub mod any;

/// `google.rpc` (only `Status`, used by introspection).
pub mod google {
    pub mod rpc {
        tonic::include_proto!("google.rpc");
    }
}

/// Every containerd protobuf package, nested as the package names are.
pub mod containerd {
    /// `containerd.types`: Mount, Descriptor, Platform, Metric, Envelope, RuntimeInfo.
    pub mod types {
        tonic::include_proto!("containerd.types");
    }
    pub mod v1 {
        /// `containerd.v1.types`: Process, Status, ProcessInfo.
        pub mod types {
            tonic::include_proto!("containerd.v1.types");
        }
    }
    /// `containerd.events`: the event messages published on the events service.
    pub mod events {
        tonic::include_proto!("containerd.events");
    }
    pub mod services {
        pub mod version {
            pub mod v1 {
                tonic::include_proto!("containerd.services.version.v1");
            }
        }
        pub mod namespaces {
            pub mod v1 {
                tonic::include_proto!("containerd.services.namespaces.v1");
            }
        }
        pub mod containers {
            pub mod v1 {
                tonic::include_proto!("containerd.services.containers.v1");
            }
        }
        pub mod content {
            pub mod v1 {
                tonic::include_proto!("containerd.services.content.v1");
            }
        }
        pub mod images {
            pub mod v1 {
                tonic::include_proto!("containerd.services.images.v1");
            }
        }
        pub mod snapshots {
            pub mod v1 {
                tonic::include_proto!("containerd.services.snapshots.v1");
            }
        }
        pub mod diff {
            pub mod v1 {
                tonic::include_proto!("containerd.services.diff.v1");
            }
        }
        pub mod leases {
            pub mod v1 {
                tonic::include_proto!("containerd.services.leases.v1");
            }
        }
        pub mod events {
            pub mod v1 {
                tonic::include_proto!("containerd.services.events.v1");
            }
        }
        pub mod tasks {
            pub mod v1 {
                tonic::include_proto!("containerd.services.tasks.v1");
            }
        }
        pub mod introspection {
            pub mod v1 {
                tonic::include_proto!("containerd.services.introspection.v1");
            }
        }
    }
    pub mod task {
        /// `containerd.task.v2`: the shim Task API.
        pub mod v2 {
            tonic::include_proto!("containerd.task.v2");
        }
    }
    pub mod runc {
        /// `containerd.runc.v1`: Options, CheckpointOptions, ProcessDetails.
        pub mod v1 {
            tonic::include_proto!("containerd.runc.v1");
        }
    }
    pub mod linux {
        /// `containerd.linux.runc`: the legacy RuncOptions and CreateOptions.
        pub mod runc {
            tonic::include_proto!("containerd.linux.runc");
        }
    }
}

/// The Metrics a shim's Stats returns, by the host's cgroup mode.
pub mod cgroups {
    /// `io.containerd.cgroups.v1`: on a legacy or hybrid (cgroup v1) host.
    pub mod v1 {
        tonic::include_proto!("io.containerd.cgroups.v1");
    }
    /// `io.containerd.cgroups.v2`: on a unified (cgroup v2 only) host.
    pub mod v2 {
        tonic::include_proto!("io.containerd.cgroups.v2");
    }
}

/// `containerd.types` plus `containerd.v1.types` (also reachable as `types::v1`).
pub mod types {
    pub use crate::containerd::types::*;
    pub use crate::containerd::v1::types::{Process, ProcessInfo, Status};
    pub mod v1 {
        pub use crate::containerd::v1::types::*;
    }
}

/// All event messages: `containerd.events.*` and the image events of
/// `containerd.services.images.v1`.
pub mod events {
    pub use crate::containerd::events::*;
    pub use crate::containerd::services::images::v1::{ImageCreate, ImageDelete, ImageUpdate};
}

/// The containerd v1 services, one module per service.
pub mod services {
    pub use crate::containerd::services::containers::v1 as containers;
    pub use crate::containerd::services::content::v1 as content;
    pub use crate::containerd::services::diff::v1 as diff;
    pub use crate::containerd::services::events::v1 as events;
    pub use crate::containerd::services::images::v1 as images;
    pub use crate::containerd::services::introspection::v1 as introspection;
    pub use crate::containerd::services::leases::v1 as leases;
    pub use crate::containerd::services::namespaces::v1 as namespaces;
    pub use crate::containerd::services::snapshots::v1 as snapshots;
    pub use crate::containerd::services::tasks::v1 as tasks;
    pub use crate::containerd::services::version::v1 as version;
}

/// The shim Task API (`containerd.task.v2`).
pub use containerd::task::v2 as shim;

/// `containerd.runc.v1` (Options, ProcessDetails) and, in [`runc::linux`], the legacy
/// `containerd.linux.runc` types (CreateOptions).
pub mod runc {
    pub use crate::containerd::runc::v1::*;
    pub mod linux {
        pub use crate::containerd::linux::runc::*;
    }
}
