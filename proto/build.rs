//! Generates the prost messages and tonic clients/servers from `protos/`. Every file is listed.

const PROTOS: &[&str] = &[
    "protos/google/rpc/status.proto",
    "protos/containerd/types/mount.proto",
    "protos/containerd/types/descriptor.proto",
    "protos/containerd/types/platform.proto",
    "protos/containerd/types/metrics.proto",
    "protos/containerd/types/event.proto",
    "protos/containerd/types/introspection.proto",
    "protos/containerd/types/task/task.proto",
    "protos/containerd/services/version/v1/version.proto",
    "protos/containerd/services/namespaces/v1/namespace.proto",
    "protos/containerd/services/containers/v1/containers.proto",
    "protos/containerd/services/content/v1/content.proto",
    "protos/containerd/services/images/v1/images.proto",
    "protos/containerd/services/snapshots/v1/snapshots.proto",
    "protos/containerd/services/diff/v1/diff.proto",
    "protos/containerd/services/leases/v1/leases.proto",
    "protos/containerd/services/events/v1/events.proto",
    "protos/containerd/services/tasks/v1/tasks.proto",
    "protos/containerd/services/introspection/v1/introspection.proto",
    "protos/containerd/events/task.proto",
    "protos/containerd/events/container.proto",
    "protos/containerd/events/image.proto",
    "protos/containerd/events/namespace.proto",
    "protos/containerd/events/content.proto",
    "protos/containerd/events/snapshot.proto",
    "protos/containerd/runc/options/oci.proto",
    "protos/containerd/runc/options/runctypes.proto",
    "protos/containerd/cgroups/v1/metrics.proto",
    "protos/containerd/cgroups/v2/metrics.proto",
];

const SHIM_PROTO: &str = "protos/containerd/runtime/task/v2/shim.proto";

fn main() -> Result<(), Box<dyn std::error::Error>> {
    if std::env::var_os("PROTOC").is_none() && std::path::Path::new("/usr/bin/protoc").exists() {
        std::env::set_var("PROTOC", "/usr/bin/protoc");
    }
    println!("cargo:rerun-if-changed={SHIM_PROTO}");
    for p in PROTOS {
        println!("cargo:rerun-if-changed={p}");
    }
    let mut config = prost_build::Config::new();
    // `prost::Name` on every message: its full protobuf name is the containerd type URL.
    config.enable_type_names();
    tonic_build::configure()
        .build_client(true)
        .build_server(true)
        .compile_protos_with_config(config, PROTOS, &["protos"])?;

    // The shim API has an rpc named Connect, which would clash with the generated client's
    // `connect` constructor: generate it apart, without the transport helpers (clients are
    // built with `TaskClient::new(channel)`), reusing the types generated above.
    let mut config = prost_build::Config::new();
    config.enable_type_names();
    config.extern_path(".containerd.types", "crate::containerd::types");
    config.extern_path(".containerd.v1.types", "crate::containerd::v1::types");
    tonic_build::configure()
        .build_client(true)
        .build_server(true)
        .build_transport(false)
        .compile_protos_with_config(config, &[SHIM_PROTO], &["protos"])?;
    Ok(())
}
