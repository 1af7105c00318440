//! Stand-in used while the `grpc` feature is off (the workspace `proto` crate has not landed yet).
use std::os::unix::net::UnixListener;
use std::sync::Arc;
use std::time::SystemTime;

use crate::task::Shim;

pub(crate) async fn serve(_shim: Arc<Shim>, _listener: UnixListener) -> Result<(), errdefs::Error> {
    Err(errdefs::Error::unimplemented("proto pending"))
}

pub(crate) fn encode_delete_response(_pid: u32, _status: u32, _at: SystemTime) -> Vec<u8> {
    Vec::new()
}
