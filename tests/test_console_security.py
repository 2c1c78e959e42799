"""The console's guards, through Flask's test client: no page without a login, the session
cookie, CSRF on every form, the headers, the login throttle, the read-only role, the users."""

from __future__ import annotations

import pathlib

import pytest

from adapters.config import ConfigError, load_settings
from console.security import CONTENT_SECURITY_POLICY
from console.throttle import (
    FIRST_LOCK_SECONDS,
    FORGET_AFTER_SECONDS,
    FREE_FAILURES,
    MAX_LOCK_SECONDS,
    USER,
    LoginThrottle,
)
from console.users import OPERATOR as OPERATOR_ROLE
from console.users import hash_password, load_users, read_users_file
from tests.plugins.console import OPERATOR, VIEWER, ConsoleUser, csrf_token, log_in, post_form
from tests.plugins.services import callbridge

PAGES = ["/", "/dead-letters/", "/audit/", "/dead-letters/message?id=x"]


@pytest.fixture
def console(make_console, sqlite_url):
    return make_console(DATABASE_URL=sqlite_url)


@pytest.mark.parametrize("page", PAGES)
def test_no_page_without_a_login(console, page) -> None:
    answer = console.client().get(page)
    assert answer.status_code == 302
    assert answer.headers["Location"].startswith("/login?next=")


def test_a_login_with_a_wrong_password_is_refused_and_written_down(console) -> None:
    client = console.client()
    refused = log_in(client, ConsoleUser(OPERATOR.name, "not it"))
    assert refused.status_code == 401
    assert "Wrong name or password." in refused.get_data(as_text=True)
    assert client.get("/").status_code == 302, "no session came of it"
    unknown = log_in(client, ConsoleUser("my-password-typed-as-a-name", "x"))
    assert unknown.status_code == 401
    entries = console.store.audit_before(None, limit=10)
    assert [(e.action, e.outcome, e.actor) for e in entries] == [
        ("login", "refused", "(unknown name)"),
        ("login", "refused", OPERATOR.name),
    ]


def test_a_login_opens_every_page_and_goes_back_where_it_was_asked(console) -> None:
    client = console.client()
    token = csrf_token(client.get("/login?next=/audit/"))
    answer = client.post(
        "/login",
        data={
            "name": OPERATOR.name,
            "password": OPERATOR.password,
            "csrf_token": token,
            "next": "/audit/",
        },
    )
    assert answer.status_code == 302
    assert answer.headers["Location"] == "/audit/"
    assert client.get("/audit/").status_code == 200
    entry = console.store.audit_before(None, limit=1)[0]
    assert (entry.action, entry.outcome, entry.actor, entry.role, entry.address) == (
        "login",
        "done",
        OPERATOR.name,
        OPERATOR_ROLE,
        "127.0.0.1",
    )


@pytest.mark.parametrize(
    "target", ["https://evil.example/", "//evil.example/", "/\\evil", "/\t/evil.example", "/ /x"]
)
def test_a_login_never_sends_the_browser_elsewhere(console, target) -> None:
    client = console.client()
    token = csrf_token(client.get("/login"))
    answer = client.post(
        "/login",
        data={
            "name": OPERATOR.name,
            "password": OPERATOR.password,
            "csrf_token": token,
            "next": target,
        },
    )
    assert answer.headers["Location"] == "/"


def test_the_session_cookie_is_signed_http_only_and_same_site_strict(console) -> None:
    client = console.client()
    answer = log_in(client, OPERATOR)
    cookie = answer.headers["Set-Cookie"]
    assert cookie.startswith("callbridge_console=")
    assert "HttpOnly" in cookie and "SameSite=Strict" in cookie and "Secure" not in cookie
    name, _, value = cookie.split(";")[0].partition("=")
    forged = console.app.test_client()
    forged.set_cookie(name, value[:-3] + ("AAA" if not value.endswith("AAA") else "BBB"))
    assert forged.get("/").status_code == 302, "a cookie whose signature fails is no session"


def test_over_https_the_cookie_is_secure_and_host_only(make_console, sqlite_url) -> None:
    console = make_console(DATABASE_URL=sqlite_url, CONSOLE_HTTPS="true")
    client = console.app.test_client()
    page = client.get("/login", base_url="https://console.example")
    token = csrf_token(page)
    answer = client.post(
        "/login",
        base_url="https://console.example",
        headers={"Referer": "https://console.example/login"},
        data={"name": OPERATOR.name, "password": OPERATOR.password, "csrf_token": token},
    )
    cookie = answer.headers["Set-Cookie"]
    assert cookie.startswith("__Host-callbridge_console=")
    assert "Secure" in cookie
    assert answer.headers["Strict-Transport-Security"].startswith("max-age=")


def test_every_answer_forbids_framing_sniffing_and_scripts(console) -> None:
    client = console.client(OPERATOR)
    for answer in (client.get("/"), client.get("/login"), client.get("/nowhere")):
        assert answer.headers["Content-Security-Policy"] == CONTENT_SECURITY_POLICY
        assert answer.headers["X-Frame-Options"] == "DENY"
        assert answer.headers["X-Content-Type-Options"] == "nosniff"
        assert answer.headers["Cache-Control"] == "no-store"
        html = answer.get_data(as_text=True)
        assert "<script" not in html and "style=" not in html and "<style" not in html


def test_a_post_without_its_csrf_token_is_refused(console) -> None:
    client = console.client(OPERATOR)
    refused = client.post("/logout")
    assert refused.status_code == 400
    assert "not sent by this console" in refused.get_data(as_text=True)
    assert client.get("/").status_code == 200, "still logged in"
    wrong = client.post("/logout", data={"csrf_token": "forged"})
    assert wrong.status_code == 400
    login = console.client().post(
        "/login", data={"name": OPERATOR.name, "password": OPERATOR.password}
    )
    assert login.status_code == 400, "the login form has its token too"


def test_a_logged_out_session_stays_out_even_replayed(console) -> None:
    client = console.client(OPERATOR)
    cookie = client.get_cookie("callbridge_console").value
    assert post_form(client, "/", "/logout").status_code == 302
    assert client.get("/").status_code == 302
    replayed = console.app.test_client()
    replayed.set_cookie("callbridge_console", cookie)
    assert replayed.get("/").status_code == 302
    assert [e.action for e in console.store.audit_before(None, limit=2)] == ["logout", "login"]


def test_a_viewer_sees_no_action_and_cannot_post_one(console) -> None:
    client = console.client(VIEWER)
    assert client.get("/").status_code == 200
    listing = client.get("/dead-letters/message?id=x")  # no broker: refused, but not for the role
    assert listing.status_code != 403
    assert client.get("/dead-letters/drop?id=x").status_code == 403
    for action, fields in (
        ("/dead-letters/replay", {"all": "yes"}),
        ("/dead-letters/drop", {"id": "x", "confirm": "yes"}),
    ):
        assert post_form(client, "/", action, **fields).status_code == 403


def test_logins_are_throttled_per_name_even_with_the_right_password(console) -> None:
    client = console.client()
    wrong = ConsoleUser(OPERATOR.name, "guess")
    for _ in range(FREE_FAILURES[USER]):
        assert log_in(client, wrong).status_code == 401
    assert log_in(client, wrong).status_code == 401  # the first lock starts with this one
    locked = log_in(client, OPERATOR)
    assert locked.status_code == 429
    assert "Too many failed logins" in locked.get_data(as_text=True)
    assert log_in(console.client(), VIEWER).status_code == 302, "another name is not locked"


def test_the_throttle_doubles_each_lock_and_forgets_in_time() -> None:
    throttle = LoginThrottle()
    keys = throttle.keys("Olga", "10.0.0.1")
    now = 1000.0
    for _ in range(FREE_FAILURES[USER]):
        throttle.failed(keys, now)
    assert throttle.locked_for(keys, now) == 0
    locks = []
    for _ in range(8):
        throttle.failed(keys, now)
        locks.append(throttle.locked_for(keys, now))
    assert locks[:3] == [FIRST_LOCK_SECONDS, 2 * FIRST_LOCK_SECONDS, 4 * FIRST_LOCK_SECONDS]
    assert locks[-1] == MAX_LOCK_SECONDS
    assert throttle.locked_for(throttle.keys("olga", "10.0.0.2"), now) == MAX_LOCK_SECONDS
    later = now + FORGET_AFTER_SECONDS + 1
    assert throttle.locked_for(keys, later) == 0
    throttle.failed(keys, now)
    throttle.succeeded(keys)
    assert throttle.locked_for(keys, now) == 0


def test_a_session_ends_when_the_password_changes(make_console, sqlite_url, tmp_path) -> None:
    console = make_console(DATABASE_URL=sqlite_url)
    client = console.client(OPERATOR)
    cookie = client.get_cookie("callbridge_console").value
    changed = tmp_path / "users"
    changed.write_text(f"{OPERATOR.name} operator {hash_password('a new one')}\n")
    from console.app import create_app

    settings = load_settings({"DATABASE_URL": sqlite_url, "CONSOLE_USERS_FILE": str(changed)})
    app = create_app(settings, read_users_file(changed), console.store)
    app.config["SECRET_KEY"] = console.app.config["SECRET_KEY"]
    later = app.test_client()
    later.set_cookie("callbridge_console", cookie)
    assert later.get("/").status_code == 302


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("olga admin scrypt:1$a$b\n", "line 1: the role must be operator or viewer"),
        ("olga operator hunter2\n", "line 1: the third field must be a hash"),
        ("# nobody\n", "names no user"),
        ("olga operator\n", "line 1: must be `name role hash` (2 fields)"),
    ],
)
def test_a_users_file_that_is_wrong_names_its_line(tmp_path, text, message) -> None:
    path = tmp_path / "users"
    path.write_text(text)
    with pytest.raises(ConfigError, match=message.replace("(", r"\(").replace(")", r"\)")):
        read_users_file(path)


def test_settings_take_a_hash_never_a_password() -> None:
    with pytest.raises(ConfigError) as raised:
        load_settings({"CONSOLE_PASSWORD": "hunter2"})
    assert str(raised.value).startswith("CONSOLE_PASSWORD=<hidden>: must be a password hash")
    assert "hunter2" not in str(raised.value)
    single = load_users(load_settings({"CONSOLE_PASSWORD": hash_password("pw")}))
    assert single.check("operator", "pw") is not None
    assert single.check("operator", "PW") is None


def test_the_console_refuses_to_start_without_users(sqlite_url, tmp_path) -> None:
    pathlib.Path(sqlite_url.removeprefix("sqlite:///")).touch()
    result = callbridge("console", env={"DATABASE_URL": sqlite_url, "PATH": "/usr/bin"})
    assert result.returncode == 2
    assert result.stderr.splitlines()[-1] == (
        "callbridge console: the console needs its users: set CONSOLE_PASSWORD to a hash "
        "printed by `callbridge console --hash-password`, or CONSOLE_USERS_FILE to a file of "
        "users"
    )


def test_hash_password_prints_a_hash_the_console_takes(tmp_path) -> None:
    import subprocess
    import sys

    result = subprocess.run(
        [sys.executable, "-m", "worker", "console", "--hash-password"],
        input="s3cret\n",
        capture_output=True,
        text=True,
        cwd=tmp_path,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    hashed = result.stdout.strip()
    assert "s3cret" not in result.stdout
    users = load_users(load_settings({"CONSOLE_PASSWORD": hashed}))
    assert users.check("operator", "s3cret") is not None
