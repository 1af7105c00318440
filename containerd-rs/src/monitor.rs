//! One watcher per live task: it holds a Wait on the task's init in the shim. When that call
//! fails (the connection to the shim broke) and the shim process is gone, the task is cleaned up
//! after (`shim delete`: processes killed, cgroup and rootfs mount removed), marked stopped, and
//! `/tasks/exit` is published for it, as containerd does for a dead shim.

use std::sync::Arc;
use std::time::Duration;

use proto::shim as sh;

use crate::Daemon;

/// Starts watching the shim of task `ns/id`. Ends when the init exits, the task is deleted, or
/// the shim died and was cleaned up after.
pub fn watch(d: Arc<Daemon>, ns: String, id: String) {
    tokio::spawn(async move {
        loop {
            let Ok(task) = d.tasks.get(&ns, &id) else {
                return;
            };
            if task.dead.is_some() {
                return;
            }
            let Some(mut client) = task.client.clone() else {
                // Being created or deleted.
                tokio::time::sleep(Duration::from_millis(200)).await;
                continue;
            };
            let waited = client
                .wait(sh::WaitRequest {
                    id: id.clone(),
                    exec_id: String::new(),
                })
                .await;
            match waited {
                // The init exited: the shim published TaskExit itself.
                Ok(_) => return,
                Err(e) => {
                    tracing::debug!(namespace = %ns, id = %id, error = %e, "wait on shim failed")
                }
            }
            match d.tasks.shim_gone(&ns, &id).await {
                Ok(Some(dead)) => {
                    d.events.publish(
                        &ns,
                        "/tasks/exit",
                        &proto::events::TaskExit {
                            container_id: id.clone(),
                            id: id.clone(),
                            pid: dead.pid,
                            exit_status: dead.exit_status,
                            exited_at: dead.exited_at,
                        },
                    );
                    return;
                }
                Ok(None) => tokio::time::sleep(Duration::from_secs(1)).await,
                Err(_) => return,
            }
        }
    });
}
