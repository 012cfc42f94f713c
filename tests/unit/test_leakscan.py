"""The leak scanner's many-needle search finds exactly what one ``in`` per needle finds."""

from hypothesis import given, settings
from hypothesis import strategies as st

from tests.leakscan import Identifiers, Needles, hits_in_text

ALPHABET = "ABSabs12 -'"


@settings(max_examples=300, deadline=None)
@given(needles=st.sets(st.text(ALPHABET, min_size=1, max_size=6), max_size=12),
       text=st.text(ALPHABET, max_size=80))
def test_the_fast_search_agrees_with_the_obvious_one(needles, text):
    planted = text[: len(text) // 2] + (min(needles) if needles else "") + text[len(text) // 2:]
    for haystack in (text, planted):
        assert Needles(needles).found_in(haystack) == {n for n in needles if n in haystack}


def test_hits_name_each_kind_of_identifier():
    ids = Identifiers(nhs={"9434765919"}, postcodes={"SS12AB"}, dobs={"1956-03-12"}, names={"Wei Nowak"})
    text = "x 943 476 5919, ss1 2ab; born 1956-03-12 to Wei Nowak."
    assert sorted(hits_in_text(text, ids)) == ["date_of_birth", "name", "nhs_number ...5919", "postcode"]
    assert hits_in_text("943 476 5918, SS1 2AC, 1956-03-13, Wei Nowa", ids) == []
