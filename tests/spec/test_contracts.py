"""Contracts: the repository's contracts pass; each kind of broken contract is reported with
its file and field, and stops the run."""

import datetime as dt
import json
import shutil
from importlib import resources

import pytest
import yaml
from jsonschema import Draft201909Validator

from pipeline.contracts import check_contract, check_contracts, feed_names, require_contract
from pipeline.contracts._ig import REQUIRED_FEED_PROPERTIES
from pipeline.errors import ContractError, ContractExpired
from tests.conftest import CONTRACTS

AS_OF = dt.date(2026, 4, 15)
FEEDS = {"sus_apc", "sus_op", "ecds", "gp", "csds", "mhsds", "asc", "ndoo", "type1_optout", "postcode_lookup",
         "ods_practices"}


def test_every_feed_has_a_contract_and_all_pass():
    assert set(feed_names(CONTRACTS)) == FEEDS
    results = check_contracts(CONTRACTS, AS_OF)
    assert all(r.ok for r in results), [str(p) for r in results for p in r.problems]


def test_contracts_are_valid_odcs_3_2_0_by_the_published_json_schema():
    schema = json.loads(resources.files("open_data_contract_standard").joinpath("schema.json").read_text())
    validator = Draft201909Validator(schema)
    for path in CONTRACTS.glob("*.odcs.yaml"):
        doc = yaml.safe_load(path.read_text())
        assert doc["apiVersion"] == "v3.2.0"
        assert not list(validator.iter_errors(doc)), path.name


def test_every_contract_carries_every_ig_field():
    for path in CONTRACTS.glob("*.odcs.yaml"):
        doc = yaml.safe_load(path.read_text())
        ig = {c["property"]: c["value"] for c in doc["customProperties"] if c.get("vendor") == "nhs-ig"}
        assert set(REQUIRED_FEED_PROPERTIES) <= set(ig), path.name
        assert [s for s in doc["slaProperties"] if s["property"] == "retention"], path.name
        for table in doc["schema"]:
            for prop in table["properties"]:
                assert prop["classification"] in {"direct-identifier", "quasi-identifier", "attribute"}
                assert any(c["property"] == "firewall" for c in prop["customProperties"]), prop["name"]


def test_health_feeds_rely_on_s251_with_expiry_and_social_care_on_consent():
    for feed in ("sus_apc", "sus_op", "ecds", "gp", "csds", "mhsds"):
        law = require_contract(CONTRACTS, feed, AS_OF).ig.legalBasis.commonLaw
        assert law.basis == "section251" and law.expires and law.reference
    asc = require_contract(CONTRACTS, "asc", AS_OF).ig
    assert asc.legalBasis.commonLaw.basis == "consent" and not asc.nationalDataOptOut.applies


@pytest.fixture
def editable(tmp_path):
    """Copy one contract to a temp folder and edit its YAML."""

    def edit(feed, change):
        folder = tmp_path / "contracts"
        folder.mkdir(exist_ok=True)
        path = folder / f"{feed}.odcs.yaml"
        shutil.copy(CONTRACTS / path.name, path)
        doc = yaml.safe_load(path.read_text())
        change(doc)
        path.write_text(yaml.safe_dump(doc, sort_keys=False))
        return path

    return edit


def _ig(doc, name):
    return next(c for c in doc["customProperties"] if c.get("property") == name)


def _prop(doc, name, table=0):
    return next(p for p in doc["schema"][table]["properties"] if p["name"] == name)


def test_expired_legal_basis_stops_everything(editable):
    def expire(doc):
        _ig(doc, "legalBasis")["value"]["commonLaw"]["expires"] = "2026-01-31"

    path = editable("sus_apc", expire)
    result = check_contract(path, AS_OF)
    assert result.expired and not result.ok
    problem = next(p for p in result.problems if p.expired)
    assert problem.file == "sus_apc.odcs.yaml"
    assert problem.field.endswith("legalBasis].value.commonLaw.expires")
    assert "2026-01-31" in problem.message
    with pytest.raises(ContractExpired):
        require_contract(path.parent, "sus_apc", AS_OF)


def test_missing_contract_stops_everything(tmp_path):
    with pytest.raises(ContractError) as exc:
        require_contract(tmp_path, "sus_apc", AS_OF)
    assert "no contract for feed 'sus_apc'" in str(exc.value)


@pytest.mark.parametrize(
    ("feed", "change", "field", "words"),
    [
        ("ecds", lambda d: _prop(d, "triage_notes")["customProperties"][0].update(value="keep"),
         "customProperties[property=firewall]", "cannot be 'keep'"),
        ("ecds", lambda d: _prop(d, "gender").update(classification="secret"), "classification", "role"),
        ("ecds", lambda d: _ig(d, "nationalDataOptOut")["value"].update(applies=False, appliedAt="not-applied"),
         "nationalDataOptOut].value.applies", "section 251"),
        ("asc", lambda d: _ig(d, "nationalDataOptOut")["value"].update(applies=True, appliedAt="ingest"),
         "nationalDataOptOut].value.applies", "consent"),
        ("ecds", lambda d: _ig(d, "legalBasis")["value"]["commonLaw"].update(expires=None),
         "commonLaw.expires", "end date"),
        ("ecds", lambda d: d.update(slaProperties=[]), "slaProperties", "retention"),
        ("ecds", lambda d: d["customProperties"].remove(_ig(d, "destruction")),
         "customProperties[property=destruction]", "missing"),
        ("ecds", lambda d: _ig(d, "identifierPolicy")["value"].update(permitted=["nhs_number", "gender"]),
         "customProperties[property=firewall]", "postcode"),
        ("ecds", lambda d: _prop(d, "nhs_number")["quality"][0]["arguments"].update(pattern="(["),
         "quality[0].arguments.pattern", "bad pattern"),
        ("ecds", lambda d: d.update(status="draft"), "status", "active"),
        ("ecds", lambda d: _ig(d, "retentionPolicy")["value"].update(staging={"value": 7, "unit": "d"}),
         "retentionPolicy].value.staging", "at least as long as raw deliveries"),
        ("ecds", lambda d: d["customProperties"].remove(_ig(d, "retentionPolicy")),
         "customProperties[property=retentionPolicy]", "missing"),
        ("ecds", lambda d: d.update(apiVersion="v2.2.0"), "apiVersion", "v3.2.0"),
        ("ecds", lambda d: d["schema"][0]["customProperties"].clear(),
         "customProperties[property=activityDate]", "activity date"),
        # the argument forms only this project ran (issue 18): each names the standard form to write
        ("ecds", lambda d: _prop(d, "arrival_date")["quality"][0].update(arguments={"formats": ["%Y-%m-%d"]}),
         "quality[0].arguments.formats", "arguments.pattern"),
        ("sus_apc", lambda d: _prop(d, "spell_cost").update(quality=[{
            "name": "spell_cost_range", "type": "library", "metric": "invalidValues",
            "arguments": {"minimum": 0, "maximum": 10}, "mustBe": 0, "unit": "rows"}]),
         "quality[0].arguments", "logicalTypeOptions minimum/maximum"),
        ("ecds", lambda d: _prop(d, "arrival_date")["quality"][0]["arguments"].update(pattern="^[0-9]+$"),
         "quality[0].arguments.pattern", "acceptedFormats"),
        ("ecds", lambda d: _prop(d, "nhs_number")["quality"][0].pop("mustBeLessOrEqualTo")
         and _prop(d, "nhs_number")["quality"][0].update(mustBeBetween=[1, 5]), "mustBeBetween", "[0, N]"),
    ],
)
def test_inconsistent_contracts_are_reported_with_file_and_field(editable, feed, change, field, words):
    path = editable(feed, change)
    result = check_contract(path, AS_OF)
    assert not result.ok and result.contract is None
    hits = [p for p in result.problems if field in p.field and words in p.message]
    assert hits, [str(p) for p in result.problems]
    assert all(p.file == path.name for p in result.problems)
    with pytest.raises(ContractError):
        require_contract(path.parent, feed, AS_OF)


def test_broken_yaml_names_the_line(tmp_path):
    path = tmp_path / "ecds.odcs.yaml"
    path.write_text("apiVersion: v3.2.0\nkind: [unclosed\n")
    result = check_contract(path, AS_OF)
    assert not result.ok and result.problems[0].field.startswith("line")


def test_ranges_come_from_logical_type_options_and_between_bounds_a_share(editable):
    """Issue 18: the standard ODCS forms carry the same rules the old argument forms did."""
    spells = require_contract(CONTRACTS, "sus_apc", AS_OF).table("sus_apc_spells")
    cost = next(r for r in spells.rules if r.name == "spell_cost_range")
    assert (cost.minimum, cost.maximum, cost.blocking, cost.threshold) == (0, 500000, True, 0)
    arrival = next(r for r in require_contract(CONTRACTS, "ecds", AS_OF).table("ecds_attendances").rules
                   if r.name == "arrival_date_format")
    assert arrival.formats == ("%Y-%m-%d",) and arrival.pattern

    def between(doc):
        rule = _prop(doc, "nhs_number")["quality"][0]
        rule.pop("mustBeLessOrEqualTo")
        rule["mustBeBetween"] = [0, 5]

    result = check_contract(editable("ecds", between), AS_OF)
    assert result.ok, [str(p) for p in result.problems]
    rule = next(r for r in result.contract.table("ecds_attendances").rules if r.name == "nhs_number_format")
    assert (rule.threshold, rule.unit) == (5, "percent")
