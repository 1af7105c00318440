"""docker-py (the PyPI package `docker`) against engine-api.

Run by integration/tests/clients_dockerpy.rs, which starts a private stack and passes:
  ENGINE_DOCKER_HOST  unix:///tmp/it-xxxx/d.sock
  ENGINE_BUSYBOX_TAR  the busybox fixture (docker save format)
  ENGINE_BUSYBOX_ID   its image ID
"""
import os
import time
import unittest

import docker

HOST = os.environ["ENGINE_DOCKER_HOST"]
TAR = os.environ["ENGINE_BUSYBOX_TAR"]
IMAGE_ID = os.environ["ENGINE_BUSYBOX_ID"]


class DockerPy(unittest.TestCase):
    # unittest runs the tests in name order; test_0_images loads the image the others use.
    @classmethod
    def setUpClass(cls):
        cls.client = docker.DockerClient(base_url=HOST, version="auto", timeout=120)
        cls.started = int(time.time())

    def test_0_images_load_list_get(self):
        c = self.client
        self.assertEqual(c.version()["ApiVersion"], "1.50")
        with open(TAR, "rb") as f:
            loaded = c.images.load(f.read())
        self.assertEqual([i.id for i in loaded], [IMAGE_ID])
        self.assertEqual(loaded[0].tags, ["busybox:latest"])
        listed = c.images.list()
        self.assertEqual([(i.id, i.tags) for i in listed], [(IMAGE_ID, ["busybox:latest"])])
        img = c.images.get("busybox")
        self.assertEqual(img.id, IMAGE_ID)
        self.assertEqual(img.attrs["Os"], "linux")
        self.assertEqual(c.images.get("docker.io/library/busybox:latest").id, IMAGE_ID)
        self.assertTrue(img.tag("localhost:5000/py/box", "v1"))
        self.assertEqual(
            c.images.get("localhost:5000/py/box:v1").tags,
            ["busybox:latest", "localhost:5000/py/box:v1"],
        )
        self.assertEqual(len(c.images.list(filters={"reference": "localhost:5000/*/*"})), 1)
        with self.assertRaises(docker.errors.ImageNotFound):
            c.images.get("nosuch:tag")
        c.images.remove("localhost:5000/py/box:v1")
        # images.get(...).save() streams a docker save tar back.
        data = b"".join(img.save(named=True))
        self.assertEqual(data[257:262], b"ustar", "a tar")

    def test_1_run_logs_and_wait(self):
        c = self.client
        out = c.containers.run("busybox", ["sh", "-c", "echo out; echo err >&2"], remove=True)
        self.assertEqual(out, b"out\n")
        out = c.containers.run(
            "busybox", ["sh", "-c", "echo out; echo err >&2"], stderr=True, stdout=False, remove=True
        )
        self.assertEqual(out, b"err\n")
        with self.assertRaises(docker.errors.ContainerError) as cm:
            c.containers.run("busybox", ["sh", "-c", "exit 3"], remove=True)
        self.assertEqual(cm.exception.exit_status, 3)
        ctr = c.containers.run(
            "busybox", ["sh", "-c", "echo one; echo two; exit 5"], detach=True, name="py-wait"
        )
        self.assertEqual(ctr.wait(timeout=60)["StatusCode"], 5)
        self.assertEqual(ctr.logs(), b"one\ntwo\n")
        self.assertEqual(ctr.logs(tail=1), b"two\n")
        ctr.reload()
        self.assertEqual(ctr.status, "exited")
        self.assertEqual(ctr.attrs["State"]["ExitCode"], 5)
        ctr.remove()
        with self.assertRaises(docker.errors.NotFound):
            c.containers.get("py-wait")

    def test_2_exec_run_and_stats(self):
        c = self.client
        ctr = c.containers.run("busybox", ["sleep", "300"], detach=True, name="py-exec")
        try:
            res = ctr.exec_run(["sh", "-c", "echo hi; echo there; exit 3"])
            self.assertEqual(res.exit_code, 3)
            self.assertEqual(res.output, b"hi\nthere\n")
            res = ctr.exec_run(["sh", "-c", "echo o; echo e >&2"], demux=True)
            self.assertEqual(res.output, (b"o\n", b"e\n"))
            res = ctr.exec_run(["sh", "-c", "echo $X $(pwd)"], environment={"X": "y"}, workdir="/tmp")
            self.assertEqual(res.output, b"y /tmp\n")
            chunks = list(ctr.exec_run(["sh", "-c", "echo a; sleep 0.2; echo b"], stream=True).output)
            self.assertEqual(b"".join(chunks), b"a\nb\n")
            st = ctr.stats(stream=False)
            self.assertEqual(st["id"], ctr.id)
            self.assertGreater(st["memory_stats"]["usage"], 0)
            self.assertGreaterEqual(st["pids_stats"]["current"], 1)
            self.assertIn("cpu_usage", st["cpu_stats"])
            stream = ctr.stats(decode=True)
            first, second = next(stream), next(stream)
            self.assertEqual(second["precpu_stats"]["cpu_usage"]["total_usage"],
                             first["cpu_stats"]["cpu_usage"]["total_usage"])
            stream.close()
            ctr.kill()
            self.assertEqual(ctr.wait(timeout=60)["StatusCode"], 137)
        finally:
            ctr.remove(force=True)

    def test_3_events(self):
        c = self.client
        since = self.started - 1
        # A live stream: the event of an action done after subscribing arrives.
        stream = c.events(decode=True, filters={"type": "image", "event": "tag"})
        self.client.images.get("busybox").tag("evt", "live")
        ev = next(stream)
        stream.close()
        self.assertEqual((ev["Type"], ev["Action"]), ("image", "tag"))
        self.assertEqual(ev["Actor"]["Attributes"]["name"], "evt:live")
        self.assertEqual(ev["Actor"]["ID"], IMAGE_ID)
        # since/until replays what the other tests did.
        past = list(c.events(since=since, until=int(time.time()) + 1, decode=True,
                             filters={"container": "py-wait"}))
        actions = [e["Action"] for e in past]
        self.assertEqual(actions[0], "create", actions)
        for a in ("start", "die", "destroy"):
            self.assertIn(a, actions)
        die = [e for e in past if e["Action"] == "die"][0]
        self.assertEqual(die["Actor"]["Attributes"]["exitCode"], "5")
        loads = list(c.events(since=since, until=int(time.time()) + 1, decode=True,
                              filters={"type": "image", "event": "load"}))
        self.assertEqual([e["Actor"]["ID"] for e in loads], [IMAGE_ID])

    def test_4_commit_and_prune(self):
        c = self.client
        ctr = c.containers.run("busybox", ["sh", "-c", "echo data > /d"], detach=True)
        ctr.wait(timeout=60)
        img = ctr.commit(repository="py-commit", tag="v1", message="from python",
                         changes=["CMD cat /d"])
        self.assertEqual(img.tags, ["py-commit:v1"])
        self.assertEqual(c.containers.run("py-commit:v1", remove=True), b"data\n")
        self.assertEqual(len(img.history()), 2)
        ctr.remove()
        c.images.remove("py-commit:v1")
        res = c.containers.prune()
        self.assertIn("SpaceReclaimed", res)
        self.assertEqual(c.info()["Images"], 1)


if __name__ == "__main__":
    unittest.main(verbosity=2)
