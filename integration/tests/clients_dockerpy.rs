//! docker-py (PyPI `docker`, installed by .ci/run) drives engine-api: images.load/list/get,
//! containers.run and its logs, wait, exec_run, stats, events, commit. The Python tests are
//! in integration/py/test_dockerpy.py; this runs them against a private stack.

use std::process::Command;
use std::time::Duration;

use integration::{busybox_fixture, cmd, describe, workspace_dir, Stack};

#[test]
fn docker_py_drives_the_engine() {
    let s = Stack::start_empty();
    let (tar, image) = busybox_fixture();
    let mut c = Command::new("python3");
    c.args(["-m", "unittest", "-v", "test_dockerpy"])
        .current_dir(workspace_dir().join("integration/py"))
        .env(
            "ENGINE_DOCKER_HOST",
            format!("unix://{}", s.engine_sock().display()),
        )
        .env("ENGINE_BUSYBOX_TAR", tar)
        .env("ENGINE_BUSYBOX_ID", &image.image_id)
        .env("PYTHONDONTWRITEBYTECODE", "1");
    let out = cmd::run_with_timeout(c, Duration::from_secs(300));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "docker-py tests failed:\n{}",
        describe(&out)
    );
    // unittest's summary: every test ran, none skipped.
    assert!(
        err.contains("Ran 5 tests") && err.trim_end().ends_with("OK"),
        "{err}"
    );
}
