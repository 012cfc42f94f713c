import re

from hypothesis import given
from hypothesis import strategies as st

from pipeline.contracts.model import QualityRule, date_regex


def test_date_regex_accepts_each_format_and_nothing_else():
    rx = re.compile(date_regex(["%Y-%m-%d", "%d/%m/%Y", "%Y%m%d"]))
    for good in ["1956-03-12", "12/03/1956", "19560312", " 1956-03-12 "]:
        assert rx.match(good)
    for bad in ["1956-3-12", "12-03-1956", "56/03/12", "1956031", "yesterday"]:
        assert not rx.match(bad)


@given(st.dates(min_value=__import__("datetime").date(1900, 1, 1)), st.sampled_from(["%Y-%m-%d", "%d/%m/%Y", "%Y%m%d"]))
def test_date_regex_matches_every_date_strftime_writes(day, fmt):
    assert re.match(date_regex([fmt]), day.strftime(fmt))


def test_percent_and_row_thresholds():
    pct = QualityRule("r", "c", "invalidValues", 5, "percent", True, "")
    assert pct.passes(5, 100) and not pct.passes(6, 100) and pct.passes(0, 0)
    rows = QualityRule("r", "c", "invalidValues", 0, "rows", True, "")
    assert rows.passes(0, 10) and not rows.passes(1, 10)
