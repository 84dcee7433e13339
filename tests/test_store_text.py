"""What the store shows of itself and of what it holds: secrets in URLs hidden, tags checked
before they are stored, stored text printable, and no database file made by a reader."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from fino.store.db import Store, StoreError, describe_error, masked
from fino.store.text import TagError, check_tag, check_tags, printable


@pytest.mark.parametrize("url", [
    "postgresql+psycopg://u@h/db?password=hunter2",
    "postgresql+psycopg://u@h/db?sslmode=require&sslpassword=hunter2",
    "postgresql+psycopg://u:hunter2@h/db?passwd=hunter2&pwd=hunter2",
    "postgresql+psycopg://u@h/db?token=hunter2&api_key=hunter2&client_secret=hunter2",
])
def test_masked_hides_the_password_and_secret_query_parameters(url: str) -> None:
    shown = masked(url)
    assert "hunter2" not in shown
    assert "***" in shown and shown.startswith("postgresql+psycopg://u")


def test_masked_keeps_the_other_query_parameters() -> None:
    shown = masked("postgresql+psycopg://u@h:5433/db?sslmode=require&password=x%20y")
    assert shown == "postgresql+psycopg://u@h:5433/db?sslmode=require&password=***"


def test_a_store_repr_hides_a_password_given_in_the_query() -> None:
    with pytest.raises(StoreError) as error:
        Store("postgresql+psycopg://me@127.0.0.1:1/db?password=hunter2&connect_timeout=2")
    assert "hunter2" not in str(error.value) and "password=***" in str(error.value)


def test_an_open_store_names_itself_without_a_query_password(tmp_path: Path) -> None:
    """What `fino worker` prints as "serving STORE" and commands print as "in STORE"."""
    store = Store(f"sqlite:///file:{tmp_path / 'x.db'}?uri=true&password=hunter2")
    assert "hunter2" not in repr(store) and "password=***" in repr(store)
    store.dispose()


def test_driver_messages_are_scrubbed_of_query_secrets() -> None:
    error = RuntimeError('connection failed: password "hunter 2" (hunter%202) rejected')
    reason = describe_error(error, "postgresql+psycopg://u@h/db?sslpassword=hunter%202")
    assert "hunter" not in reason and reason.count("***") == 2


@pytest.mark.parametrize("tag", ["paper", "study:repro", "budget:cpu", "a.b_c-d@e/f", "ß1"])
def test_good_tags_pass(tag: str) -> None:
    assert check_tag(tag) == tag


@pytest.mark.parametrize("tag", ["", "a,b", "a b", "[bold red]x[/]", "x\x1b[31m", "x\n",
                                 "tab\there", "x" * 65])
def test_bad_tags_are_refused_naming_the_tag_and_the_allowed_characters(tag: str) -> None:
    with pytest.raises(TagError, match="letters, digits and") as error:
        check_tag(tag)
    assert "\x1b" not in str(error.value) and "\n" not in str(error.value)


def test_check_tags_drops_repeats_and_keeps_order() -> None:
    assert check_tags(["b", "a", "b"]) == ["b", "a"]


def test_printable_shows_control_characters_visibly() -> None:
    assert printable("\x1b[31mred\x1b[0m") == "^[[31mred^[[0m"
    assert printable("a\rb\x07\x7f") == "a^Mb^G^?"
    assert printable("csi\x9b31m bidi\u202e") == "csi\\x9b31m bidi\\u202e"
    assert printable("two\nlines\tok") == "two^Jlines^Iok"
    assert printable("two\nlines\tok\x1b", multiline=True) == "two\nlines\tok^["
    assert printable("[bold]é ✓ β[/]") == "[bold]é ✓ β[/]"


def test_a_reader_does_not_create_a_database(tmp_path: Path) -> None:
    path = tmp_path / "experiments.db"
    with pytest.raises(StoreError, match=f"no database at {path}: queue a run first"):
        Store(str(path), create=False)
    assert not path.exists()
    Store(str(path)).dispose()  # a writer creates it
    Store(str(path), create=False).dispose()
    assert sqlite3.connect(path).execute("select count(*) from runs").fetchone() == (0,)
