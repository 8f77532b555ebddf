"""The budget overrides repository (backend/db/budgets.py) on SQLite and a real PostgreSQL: put, get, delete and
listing, None as an explicit "unlimited", a key's own override apart from its users', concurrent puts that all
succeed on one row, and overrides in export (shown) and erase (kept: the operator's, not the learner's)."""
from __future__ import annotations

from sqlalchemy import func, select

from backend.db import budgets, learner_data
from backend.db.models import BudgetOverride
from backend.schemas.caller import Caller
from tests.unit.jobs_repository_helpers import (  # the callers, the database fixture and its steps
    ALICE,
    BOB,
    OTHER_KEY_ALICE,
    all_at_once,
    call,
    database_fixture,  # noqa: F401  (the database fixture)
    new_job,
)

KEY = Caller("tester")  # the key's own data


def rows(database):
    with database.session() as session:
        return session.scalar(select(func.count()).select_from(BudgetOverride))


def test_an_unknown_caller_has_no_override(database):
    assert call(database, budgets.get, ALICE) is None
    assert call(database, budgets.get_many, [ALICE, BOB]) == {}
    assert call(database, budgets.all_overrides) == []


def test_put_then_get_and_put_again_replaces_it(database):
    first = call(database, budgets.put, ALICE, 2.5)
    assert (first.caller, first.daily_usd) == (ALICE, 2.5)
    stored = call(database, budgets.get, ALICE)
    assert (stored.caller, stored.daily_usd) == (ALICE, 2.5)
    assert stored.updated_at.tzinfo is not None
    call(database, budgets.put, ALICE, 0.75)
    again = call(database, budgets.get, ALICE)
    assert again.daily_usd == 0.75 and again.updated_at >= stored.updated_at
    assert rows(database) == 1


def test_none_is_stored_as_an_explicit_unlimited_override(database):
    call(database, budgets.put, ALICE, None)
    stored = call(database, budgets.get, ALICE)
    assert stored is not None and stored.daily_usd is None
    assert call(database, budgets.get_many, [ALICE])[ALICE].daily_usd is None
    call(database, budgets.put, ALICE, 1.0)  # and back to a limit
    assert call(database, budgets.get, ALICE).daily_usd == 1.0


def test_delete_says_whether_there_was_one(database):
    call(database, budgets.put, ALICE, 3.0)
    call(database, budgets.put, BOB, 4.0)
    assert call(database, budgets.delete, ALICE) is True
    assert call(database, budgets.get, ALICE) is None
    assert call(database, budgets.delete, ALICE) is False
    assert call(database, budgets.get, BOB).daily_usd == 4.0


def test_get_many_returns_only_the_callers_that_have_one(database):
    call(database, budgets.put, ALICE, 1.0)
    call(database, budgets.put, OTHER_KEY_ALICE, None)
    found = call(database, budgets.get_many, [ALICE, BOB, OTHER_KEY_ALICE, ALICE, KEY])
    assert set(found) == {ALICE, OTHER_KEY_ALICE}
    assert (found[ALICE].daily_usd, found[OTHER_KEY_ALICE].daily_usd) == (1.0, None)


def test_get_many_reads_more_callers_than_one_chunk(database):
    many = [Caller("tester", f"user{i}") for i in range(budgets.CHUNK + 20)]
    with database.session(write=True) as session:
        for i, caller in enumerate(many[::2]):
            budgets.put(session, caller, float(i))
    found = call(database, budgets.get_many, many)
    assert set(found) == set(many[::2])
    assert found[many[-2]].daily_usd == float(len(many[::2]) - 1)


def test_the_keys_own_override_is_apart_from_its_users(database):
    call(database, budgets.put, KEY, 10.0)
    call(database, budgets.put, Caller("tester", "tester"), 1.0)
    assert call(database, budgets.get, KEY).daily_usd == 10.0
    assert call(database, budgets.get, ALICE) is None
    assert call(database, budgets.get, Caller("tester", "tester")).daily_usd == 1.0
    assert call(database, budgets.delete, ALICE) is False and call(database, budgets.get, KEY).daily_usd == 10.0


def test_all_overrides_lists_by_client_then_user_up_to_the_limit(database):
    for caller in (OTHER_KEY_ALICE, BOB, KEY, ALICE):
        call(database, budgets.put, caller, 1.0)
    listed = call(database, budgets.all_overrides)
    assert [o.caller for o in listed] == [OTHER_KEY_ALICE, KEY, ALICE, BOB]
    assert [o.caller for o in call(database, budgets.all_overrides, limit=2)] == [OTHER_KEY_ALICE, KEY]


def test_concurrent_puts_for_one_new_caller_all_succeed_on_one_row(database):
    outcomes = all_at_once(4, lambda i: call(database, budgets.put, ALICE, float(i + 1)))
    assert not [o for o in outcomes if isinstance(o, BaseException)], outcomes
    assert rows(database) == 1
    assert call(database, budgets.get, ALICE).daily_usd in {1.0, 2.0, 3.0, 4.0}


def test_export_has_the_callers_budget_and_none_without_one(database):
    call(database, budgets.put, ALICE, 2.0)
    call(database, budgets.put, BOB, None)
    alice = call(database, learner_data.export, ALICE)["budget"]
    assert alice == {"daily_usd": 2.0, "updated_at": call(database, budgets.get, ALICE).updated_at.isoformat()}
    assert call(database, learner_data.export, BOB)["budget"]["daily_usd"] is None
    assert call(database, learner_data.export, KEY)["budget"] is None


def test_erase_keeps_the_override(database):
    call(database, budgets.put, ALICE, 0.5)
    new_job(database, ALICE)
    assert call(database, learner_data.erase, ALICE)["jobs"] == 1
    assert call(database, budgets.get, ALICE).daily_usd == 0.5
