"""Retention policies from contracts, one change at a time: periods, holds, approval."""

import datetime as dt
import shutil

import pytest
import yaml

from pipeline.contracts._ig import LegalHold, Period
from pipeline.retention.policy import TableRule, load_policies, period_end
from tests.conftest import CONTRACTS

AS_OF = dt.date(2029, 6, 1)


@pytest.mark.parametrize(("period", "day", "expected"), [
    (Period(value=5, unit="y"), dt.date(2029, 6, 1), dt.date(2024, 6, 1)),
    (Period(value=1, unit="y"), dt.date(2028, 2, 29), dt.date(2027, 2, 28)),  # no 29 February
    (Period(value=1, unit="m"), dt.date(2029, 3, 31), dt.date(2029, 2, 28)),
    (Period(value=14, unit="m"), dt.date(2029, 1, 15), dt.date(2027, 11, 15)),
    (Period(value=30, unit="d"), dt.date(2029, 3, 1), dt.date(2029, 1, 30)),
])
def test_a_period_before_a_day_is_calendar_arithmetic(period, day, expected):
    assert period.before(day) == expected


@pytest.mark.parametrize(("period", "end"), [("2024-02", dt.date(2024, 2, 29)), ("2023-12", dt.date(2023, 12, 31)),
                                             ("2025", dt.date(2025, 12, 31)), ("2026-04-15", dt.date(2026, 4, 15))])
def test_a_delivery_period_ends_on_its_last_day(period, end):
    assert period_end(period) == end


def test_a_hold_is_in_force_from_placing_until_lifting():
    hold = LegalHold(reference="LH-1", reason="An inquest is pending", placedBy="Caldicott Guardian",
                     placed=dt.date(2029, 1, 1), lifted=dt.date(2029, 6, 1))
    assert [hold.in_force(d) for d in (dt.date(2028, 12, 31), dt.date(2029, 1, 1), dt.date(2029, 5, 31),
                                        dt.date(2029, 6, 1))] == [False, True, True, False]


def test_rules_name_a_column_and_a_date_only():
    rule = TableRule("sus_apc", "sus_apc_spells", "admission_date", dt.date(2024, 6, 1))
    assert rule.due_sql() == "(admission_date < DATE '2024-06-01')"
    by_period = TableRule("ndoo", "ndoo_list", None, dt.date(2029, 4, 1)).due_sql().format(table="stg_ndoo_list")
    assert "max(_period) FROM stg_ndoo_list" in by_period  # the newest list is always kept


def _edited(tmp_path, feed, change):
    folder = tmp_path / "contracts"
    shutil.copytree(CONTRACTS, folder)
    path = folder / f"{feed}.odcs.yaml"
    doc = yaml.safe_load(path.read_text())
    change(doc)
    path.write_text(yaml.safe_dump(doc, sort_keys=False))
    return folder


def _prop(doc, name):
    return next(c for c in doc["customProperties"] if c.get("property") == name)


def test_every_shipped_feed_has_an_approved_policy():
    policies = load_policies(CONTRACTS, dt.date(2026, 4, 15))
    assert len(policies) == 11 and all(p.status == "due" for p in policies.values())
    apc = policies["sus_apc"]
    assert (apc.element_table, apc.element_column, apc.records.describe()) == ("sus_apc_spells", "admission_date",
                                                                               "5 years")
    assert apc.approver == "Information Governance Lead, Essex CSU" and apc.method == "crypto-shred"


def test_an_expired_legal_basis_does_not_stop_destruction_and_is_noted():
    apc = load_policies(CONTRACTS, AS_OF)["sus_apc"]  # its section 251 support ends 2027-09-30
    assert apc.approved and apc.status == "due" and any("expired" in n for n in apc.notes)


@pytest.mark.parametrize(("change", "words"), [
    (lambda d: d.update(status="draft"), "status"),
    (lambda d: _prop(d, "approval")["value"].update(date="2030-01-01"), "future"),
    (lambda d: d["customProperties"].remove(_prop(d, "approval")), "approval"),
])
def test_without_an_approved_contract_nothing_is_approved_but_the_rules_are_still_known(tmp_path, change, words):
    policy = load_policies(_edited(tmp_path, "ecds", change), AS_OF)["ecds"]
    assert not policy.approved and policy.status == "not-approved"
    assert words in policy.reason()
    assert policy.rules(AS_OF)  # what would be due is still reported


def test_a_hold_in_force_holds_and_a_lifted_one_does_not(tmp_path):
    def hold(placed, lifted=None):
        def change(doc):
            _prop(doc, "retentionPolicy")["value"]["legalHolds"] = [{
                "reference": "LH-9", "reason": "Litigation: preserve everything", "placedBy": "IG Lead",
                "placed": placed, **({"lifted": lifted} if lifted else {})}]
        return change

    assert load_policies(_edited(tmp_path / "a", "gp", hold("2029-01-01")), AS_OF)["gp"].status == "held"
    assert load_policies(_edited(tmp_path / "b", "gp", hold("2028-01-01", "2029-01-01")), AS_OF)["gp"].status == "due"
    assert load_policies(_edited(tmp_path / "c", "gp", hold("2030-01-01")), AS_OF)["gp"].status == "due"
