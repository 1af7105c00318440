//! Generated gRPC types: the containerd v1 API and the shim task API. Only this crate knows protobuf.
