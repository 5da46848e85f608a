"""Commits in flight (pipeline.graph.commits): at most ``limit`` at once, settled oldest
first on the caller's thread, never two on one key, and a failure waits for the others."""
from __future__ import annotations

import threading

import pytest

from pipeline.graph.commits import Commits


def _recorder():
    settled = []

    def settle(sent):
        sent.future.result()
        settled.append((sent.namespace, tuple(sent.batch), threading.current_thread().name))

    return settled, settle


def test_two_commits_run_at_once_and_are_settled_in_order_on_the_callers_thread():
    settled, settle = _recorder()
    commits = Commits(settle, limit=2)
    both = threading.Barrier(2, timeout=60)  # passes only when both calls run at once
    ran = []

    def call(name):
        def run(held):
            ran.append(threading.current_thread().name)
            both.wait()
        return run

    commits.send("", ["a"], [("", "a")], None, call("a"))
    commits.send("", ["b"], [("", "b")], None, call("b"))
    assert len(commits) == 2 and settled == []
    commits.clear()
    me = threading.current_thread().name
    assert settled == [("", ("a",), me), ("", ("b",), me)]
    assert all(name.startswith("commit") for name in ran)


def test_a_third_commit_waits_for_the_oldest():
    settled, settle = _recorder()
    commits = Commits(settle, limit=2)
    for name in "abc":
        commits.send("ns", [name], [("ns", name)], None, lambda held: None)
    assert [b for _, b, _ in settled] == [("a",)] and len(commits) == 2
    commits.clear()
    assert [b for _, b, _ in settled] == [("a",), ("b",), ("c",)] and len(commits) == 0


def test_a_key_in_flight_is_settled_before_it_is_used_again():
    settled, settle = _recorder()
    commits = Commits(settle, limit=2)
    release = threading.Event()
    commits.send("", ["a"], [("", "a")], None, lambda held: release.wait(60))
    commits.send("", ["b"], [("", "b")], None, lambda held: None)
    commits.clear([("", "z")])  # not in flight: nothing waits
    assert settled == [] and len(commits) == 2
    release.set()
    commits.clear([("", "b")])  # the commit of b, and the older one before it
    assert [b for _, b, _ in settled] == [("a",), ("b",)]


def test_a_failed_commit_fails_after_the_others_have_ended_unsettled():
    settled, settle = _recorder()
    commits = Commits(settle, limit=2)
    later_done = threading.Event()

    def fails(held):
        raise RuntimeError("refused")

    def slow(held):
        later_done.wait(0.2)
        later_done.set()

    commits.send("", ["a"], [("", "a")], None, fails)
    commits.send("", ["b"], [("", "b")], None, slow)
    with pytest.raises(RuntimeError, match="refused"):
        commits.clear()
    assert later_done.is_set(), "the other commit was still running"
    assert settled == [] and len(commits) == 0 and commits.keys == set()


def test_no_commit_in_flight_with_limit_zero():
    settled, settle = _recorder()
    commits = Commits(settle, limit=0)
    threads = []
    commits.send("", ["a"], [("", "a")], None,
                  lambda held: threads.append(threading.current_thread().name))
    assert len(commits) == 0 and threads == [threading.current_thread().name]
    assert [b for _, b, _ in settled] == [("a",)]


def test_commits_of_one_entity_group_never_overlap():
    """A root and its children are one group (the worker's own transactions on it would
    contend); namespaces and other roots are apart."""
    from google.cloud import datastore

    from pipeline.graph.commits import group_id
    def key(*path, namespace=None):
        return datastore.Key(*path, project="p", namespace=namespace)

    root = key("Parent", 1)
    assert group_id(root) == group_id(key("Parent", 1, "Item", "a")) == \
        group_id(key("Parent", 1, "Item", "a", "Sub", 2))
    assert group_id(root) != group_id(key("Parent", 2))
    assert group_id(root) != group_id(key("Parent", 1, namespace="acme"))
