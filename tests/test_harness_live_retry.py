"""The tests' live replays through the real node are retried once on another domain where the
replay and the node never discovered each other (the cause is not found:
`ros_helpers.harness.replay_live_as_the_cli`), with a warning; any other failure, or a second
one, is raised."""

from __future__ import annotations

import contextlib
from dataclasses import dataclass

import pytest
from ros_helpers import harness


@dataclass(frozen=True)
class Live:
    domain_id: int


def _runs(monkeypatch, outcomes: list[object]) -> list[int]:
    domains: list[int] = []

    def child(bag, out, cfg, live, *rest):
        domains.append(live.domain_id)
        outcome = outcomes.pop(0)
        if isinstance(outcome, Exception):
            raise outcome
        return outcome

    monkeypatch.setattr(harness, "_replay_live_in_a_child", child)
    return domains


def _never(domain: int) -> RuntimeError:
    return RuntimeError(
        f"node did not ... within 90 s: {harness.NEVER_DISCOVERED} (ROS_DOMAIN_ID={domain})"
    )


def test_never_discovered_is_retried_once_on_another_domain(monkeypatch, tmp_path):
    domains = _runs(monkeypatch, [_never(37), {"status": "complete"}])
    (tmp_path / "live").mkdir()
    with pytest.warns(UserWarning, match="live replay retried on a new domain"):
        report = harness.replay_live_as_the_cli("bag", tmp_path / "live", "cfg", Live(37))
    assert report == {"status": "complete"} and domains[0] == 37 and domains[1] != 37
    assert not (tmp_path / "live").exists()  # the failed run's folder, cleared for the retry


@pytest.mark.parametrize(
    "outcomes",
    [[RuntimeError("node did not ...: the node published no output")], [_never(37), _never(38)]],
    ids=["another failure", "twice"],
)
def test_anything_else_is_raised(monkeypatch, tmp_path, outcomes):
    first = outcomes[-1]
    _runs(monkeypatch, outcomes)
    warned = pytest.warns(UserWarning) if len(outcomes) == 2 else contextlib.nullcontext()
    with warned, pytest.raises(RuntimeError) as raised:
        harness.replay_live_as_the_cli("bag", tmp_path / "live", "cfg", Live(37))
    assert raised.value is first
