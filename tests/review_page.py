"""A running `hkd review` process and raw HTTP requests to it (any Host, Origin, body), for the
tests that talk to the page as a browser or a second terminal would."""

import http.client
import json
import socket
import subprocess
import sys
import time
from urllib.parse import urlsplit

from conftest import REPO


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Page:
    """A running `hkd review` process and raw HTTP requests to it (any Host, Origin, body)."""

    def __init__(self, run_dir, *options: str) -> None:
        self.run_dir, self.port = run_dir, free_port()
        self.process = subprocess.Popen(
            [sys.executable, "-m", "hkd", "review", str(run_dir), "--port", str(self.port), *options],
            cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        self.url = self.process.stdout.readline().strip().split("review page: ", 1)[1]
        query = urlsplit(self.url).query
        self.token = dict(part.split("=") for part in query.split("&") if part).get("token")
        deadline = time.time() + 60
        while True:
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=1).close()
                break
            except OSError as error:
                if time.time() > deadline:
                    self.process.kill()
                    raise RuntimeError(f"hkd review never listened on port {self.port}: "
                                       f"{self.process.stderr.read()}") from error
                time.sleep(0.1)
        self.host = f"127.0.0.1:{self.port}"
        self.origin = f"http://{self.host}"

    def request(self, method: str, path: str, body: bytes | None = None, **headers: str):
        headers = {"Host": self.host, **{k.replace("_", "-"): v for k, v in headers.items()}}
        connection = http.client.HTTPConnection("127.0.0.1", self.port, timeout=30)
        for attempt in range(3):  # a refused connection sent nothing: safe to try again
            try:
                connection.connect()
                break
            except ConnectionRefusedError:
                if attempt == 2 or self.process.poll() is not None:
                    raise
                time.sleep(0.5)
        connection.request(method, path, body=body, headers=headers)
        response = connection.getresponse()
        data = response.read()
        connection.close()
        return response.status, response.headers, data

    def authorised(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"} if self.token else {}

    def stop(self) -> str:
        self.process.terminate()
        self.process.wait(timeout=20)
        return self.process.stderr.read()

    def put_mark(self, round_number: int, sample_id: str, body: dict) -> tuple[int, dict]:
        """A same-origin JSON save, as the page makes it: (status, answer)."""
        status, _, data = self.request("PUT", f"/api/rounds/{round_number}/samples/{sample_id}/marks",
                                       json.dumps(body).encode(), Origin=self.origin,
                                       Content_Type="application/json", **self.authorised())
        return status, json.loads(data)

    def get(self, path: str) -> dict:
        status, _, data = self.request("GET", path, **self.authorised())
        assert status == 200, (path, status, data)
        return json.loads(data)
