"""The review page's protections, with real HTTP requests against a real `hkd review` process:
Host check (DNS rebinding), token -> session cookie, same-origin JSON writes, security headers, and
the audit trail of accepted changes."""

import json

import pytest
from conftest import tiny_config
from review_page import Page

from hkd.review.app import serve
from hkd.run.experiment import run_experiment

QUEUE = ["imil.enabled=true", "imil.oracle=queue", "imil.start_epoch=0", "imil.every_n_epochs=1",
         "imil.budget=0.1", "trainer.max_epochs=3", "augment.policy=none", "logging.wandb=disabled"]


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("review")
    run_dir = run_experiment(tiny_config(tmp, *QUEUE))
    assert (run_dir / "imil" / "round_1" / "manifest.json").is_file()
    return run_dir


@pytest.fixture(scope="module")
def page(run_dir):
    page = Page(run_dir)
    yield page
    page.stop()


@pytest.fixture(scope="module")
def sample(run_dir):
    return json.loads((run_dir / "imil" / "round_1" / "manifest.json").read_text())["samples"][0]


def marks_url(sample) -> str:
    return f"/api/rounds/1/samples/{sample['id']}/marks"


def mark(version: int | None = None) -> bytes:
    rect = {"type": "rect", "x": 1, "y": 1, "w": 5, "h": 5}
    body = {"status": "marked", "who": "dr. audit", "regions": [rect]}
    return json.dumps({**body, **({"version": version} if version is not None else {})}).encode()


def audit_lines(run_dir) -> list[dict]:
    path = run_dir / "imil" / "round_1" / "audit.jsonl"
    return [json.loads(line) for line in path.read_text().splitlines()] if path.is_file() else []


def test_a_token_is_generated_and_printed_in_the_url(page):
    assert page.token and len(page.token) >= 24
    assert page.url == f"http://127.0.0.1:{page.port}/?token={page.token}"


def test_foreign_host_is_refused_on_every_route_before_any_handler(page, sample, run_dir):
    routes = [("GET", "/"), ("GET", "/static/app.js"), ("GET", "/api/rounds"), ("GET", "/api/rounds/1"),
              ("GET", f"/api/rounds/1/samples/{sample['id']}/image"), ("GET", "/api/rounds/1/coco"),
              ("GET", f"/?token={page.token}")]
    foreign = ("attacker.example", f"attacker.example:{page.port}", "127.0.0.2", "localhost.attacker.example")
    for host in foreign:
        for method, path in routes:
            status, _, body = page.request(method, path, Host=host, **page.authorised())
            assert status == 403, (host, path, status)
            assert b"PNG" not in body and b"samples" not in body
        status, _, _ = page.request("PUT", marks_url(sample), mark(), Host=host, Origin=f"http://{host}",
                                    Content_Type="application/json", **page.authorised())
        assert status == 403
    # the request of the issue: a rebinding page writing with text/plain
    status, _, _ = page.request("PUT", marks_url(sample), b'{"status":"skipped","regions":[]}',
                                Host="attacker.example", Origin="http://attacker.example",
                                Content_Type="text/plain")
    assert status == 403
    assert not (run_dir / "imil" / "round_1" / "marks.json").exists() and audit_lines(run_dir) == []
    for host in ("localhost", f"localhost:{page.port}", "127.0.0.1"):  # the served names
        assert page.request("GET", "/api/rounds", Host=host, **page.authorised())[0] == 200


def test_without_the_token_every_request_is_401(page, sample):
    for path in ("/", "/api/rounds", f"/api/rounds/1/samples/{sample['id']}/image", "/static/app.js"):
        assert page.request("GET", path)[0] == 401
    assert page.request("GET", "/api/rounds", Authorization="Bearer wrong")[0] == 401
    assert page.request("GET", "/?token=wrong")[0] == 401
    assert page.request("GET", "/api/rounds", Cookie="hkd_review_session=guess")[0] == 401


def test_token_in_the_url_sets_a_session_cookie_and_redirects_without_the_token(page):
    status, headers, _ = page.request("GET", f"/?token={page.token}&round=1")
    assert status == 303 and headers["location"] == "/?round=1"
    cookie = headers["set-cookie"]
    assert "HttpOnly" in cookie and "samesite=strict" in cookie.lower() and "Path=/" in cookie
    session = cookie.split(";")[0]
    assert page.token not in session
    status, _, body = page.request("GET", "/api/rounds", Cookie=session)
    assert status == 200 and json.loads(body)["rounds"][0]["round"] == 1
    status, headers, body = page.request("GET", "/?round=1", Cookie=session)
    assert status == 200 and b"IMIL review" in body
    assert page.request("GET", "/api/rounds", **page.authorised())[0] == 200  # or a bearer token


def test_security_headers_on_page_api_images_and_refusals(page, sample):
    responses = {
        "page": page.request("GET", "/", **page.authorised()),
        "api": page.request("GET", "/api/rounds/1", **page.authorised()),
        "image": page.request("GET", f"/api/rounds/1/samples/{sample['id']}/image", **page.authorised()),
        "script": page.request("GET", "/static/app.js", **page.authorised()),
        "refused": page.request("GET", "/api/rounds"),
    }
    for name, (_, headers, _) in responses.items():
        policy = headers["content-security-policy"]
        assert "script-src 'self'" in policy and "frame-ancestors 'none'" in policy, name
        assert "default-src 'none'" in policy and "'unsafe-inline'" not in policy, name
        assert headers["x-content-type-options"] == "nosniff", name
        assert headers["referrer-policy"] == "no-referrer", name
    assert responses["image"][2][:4] == b"\x89PNG"
    for name in ("api", "image", "refused"):
        assert responses[name][1]["cache-control"] == "no-store", name


def test_writes_need_our_origin_and_json_and_each_accepted_change_is_audited(page, sample, run_dir):
    url, auth = marks_url(sample), page.authorised()
    refused = [
        (mark(), {"Origin": "http://attacker.example", "Content_Type": "application/json"}, 403),
        (mark(), {"Origin": "null", "Content_Type": "application/json"}, 403),
        (mark(), {"Referer": "http://attacker.example/page", "Content_Type": "application/json"}, 403),
        (mark(), {"Origin": page.origin, "Content_Type": "text/plain"}, 415),
        (mark(), {"Origin": page.origin, "Content_Type": "application/x-www-form-urlencoded"}, 415),
        (mark(), {"Origin": page.origin}, 415),
    ]
    before = audit_lines(run_dir)
    for body, headers, expected in refused:
        assert page.request("PUT", url, body, **headers, **auth)[0] == expected, headers
    assert audit_lines(run_dir) == before
    status, _, body = page.request("PUT", url, mark(), Origin=page.origin, Content_Type="application/json",
                                   **auth)
    assert status == 200
    version = json.loads(body)["version"]
    status, _, _ = page.request("PUT", url, mark(version), Referer=f"{page.origin}/?round=1",
                                Content_Type="application/json; charset=utf-8", **auth)
    assert status == 200
    assert page.request("PUT", url, mark(0), Content_Type="application/json", **auth)[0] == 409  # stale
    lines = audit_lines(run_dir)[len(before):]
    assert len(lines) == 2  # one per accepted change, none for the refused or stale ones
    assert [line["replaced_version"] for line in lines] == [version - 1, version]
    assert all(line["who"] == "dr. audit" and line["sample"] == sample["id"] and line["idx"] == sample["idx"]
               and line["status"] == "marked" and line["regions"] == 1 and line["client"] == "127.0.0.1"
               for line in lines)


def test_no_token_only_on_loopback_with_a_warning(run_dir, sample):
    with pytest.raises(ValueError, match="only for the loopback"):
        serve(run_dir, host="0.0.0.0", port=1, no_token=True)
    with pytest.raises(ValueError, match="only for the loopback"):
        serve(run_dir, port=1, token="t", no_token=True)
    page = Page(run_dir, "--no-token")
    try:
        assert page.token is None and page.request("GET", "/api/rounds")[0] == 200
        assert page.request("GET", "/api/rounds", Host="attacker.example")[0] == 403
        status, _, _ = page.request("PUT", marks_url(sample), mark(), Origin="http://attacker.example",
                                    Content_Type="application/json")
        assert status == 403  # the Origin and Host checks still hold without a token
    finally:
        stderr = page.stop()
    assert "warning: serving without a token" in stderr
