"""Each test is marked with the services it needs, so that ``-m "not postgres"`` (or ``not
rabbitmq``) leaves out exactly the tests that cannot run without that service."""

from __future__ import annotations

import pytest

USES = """
def test_postgres(postgres_url): pass
def test_worker_on_postgres(worker_env, postgres_url): pass
def test_broker(queues): pass
def test_each_store(store_url): pass
def test_private_broker(private_rabbitmq): pass
def test_nothing(tmp_path): pass
def test_postgres_unnamed(request):
    request.getfixturevalue("postgres_url")
"""


@pytest.fixture
def suite(pytester: pytest.Pytester) -> pytest.Pytester:
    """A test module using the services in every way the suite does, on the suite's fixtures."""
    pytester.makeconftest(
        'pytest_plugins = ["tests.plugins.sandbox", "tests.plugins.services", '
        '"tests.plugins.private_broker"]'
    )
    pytester.makepyfile(test_uses=USES)
    return pytester


def test_each_test_is_marked_with_the_services_its_fixtures_need(suite: pytest.Pytester) -> None:
    items, _ = suite.inline_genitems()
    marked = {
        item.name: sorted({mark.name for mark in item.iter_markers()} & {"postgres", "rabbitmq"})
        for item in items
    }
    assert marked == {
        "test_postgres": ["postgres"],
        "test_worker_on_postgres": ["postgres", "rabbitmq"],
        "test_broker": ["rabbitmq"],
        "test_each_store[sqlite]": [],
        "test_each_store[postgres]": ["postgres"],
        "test_private_broker": ["rabbitmq"],
        "test_nothing": [],
        "test_postgres_unnamed": [],
    }


@pytest.mark.parametrize(
    ("selection", "left"),
    [
        ("not postgres", {"test_broker", "test_each_store[sqlite]", "test_private_broker"}),
        ("not rabbitmq", {"test_postgres", "test_each_store[sqlite]", "test_each_store[postgres]"}),
    ],
)
def test_a_marker_selection_leaves_out_every_test_needing_the_service(
    suite: pytest.Pytester, selection: str, left: set[str]
) -> None:
    result = suite.runpytest("--collect-only", "-q", "-m", selection, "-p", "no:cacheprovider")
    names = {line.split("::")[1] for line in result.outlines if "::" in line}
    assert names - {"test_nothing", "test_postgres_unnamed"} == left


def test_a_test_reaching_postgres_through_a_fixture_it_does_not_name_fails(
    suite: pytest.Pytester, postgres_server: str
) -> None:
    """(The inner test reaches the server before it is refused, so this one needs it too.)"""
    result = suite.runpytest("-k", "test_postgres_unnamed", "-p", "no:cacheprovider")
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(["*needs postgres but is not marked so*"])
