"""Our pydantic model of the IG extension: ODCS ``customProperties`` with ``vendor: nhs-ig``.

ODCS types ``customProperties[].value`` as "any", so the standard's own model does not check
IG facts; these models do. Field names follow ODCS camelCase.
"""

from __future__ import annotations

import datetime as dt
from enum import StrEnum
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

VENDOR = "nhs-ig"


class Role(StrEnum):
    """What a column is, for information governance."""

    DIRECT_IDENTIFIER = "direct-identifier"
    QUASI_IDENTIFIER = "quasi-identifier"
    ATTRIBUTE = "attribute"


class FirewallAction(StrEnum):
    """What the identifier firewall does to a column."""

    PSEUDONYMISE_NHS_NUMBER = "pseudonymise-nhs-number"
    AGE_AT_ACTIVITY = "age-at-activity"
    POSTCODE_GEOGRAPHY = "postcode-geography"
    GENDER_CODE = "gender-code"
    PSEUDONYMISE_LOCAL_ID = "pseudonymise-local-id"
    DROP = "drop"
    KEEP = "keep"


#: Actions allowed for each role: identifiers are transformed or dropped, never kept.
ACTIONS_FOR_ROLE: dict[Role, frozenset[FirewallAction]] = {
    Role.DIRECT_IDENTIFIER: frozenset(
        {
            FirewallAction.PSEUDONYMISE_NHS_NUMBER,
            FirewallAction.AGE_AT_ACTIVITY,
            FirewallAction.POSTCODE_GEOGRAPHY,
            FirewallAction.PSEUDONYMISE_LOCAL_ID,
            FirewallAction.DROP,
        }
    ),
    Role.QUASI_IDENTIFIER: frozenset({FirewallAction.GENDER_CODE, FirewallAction.DROP}),
    Role.ATTRIBUTE: frozenset({FirewallAction.KEEP, FirewallAction.DROP}),
}

#: The identifier kind each transforming action lets through (checked against identifierPolicy).
IDENTIFIER_KIND: dict[FirewallAction, str] = {
    FirewallAction.PSEUDONYMISE_NHS_NUMBER: "nhs_number",
    FirewallAction.AGE_AT_ACTIVITY: "date_of_birth",
    FirewallAction.POSTCODE_GEOGRAPHY: "postcode",
    FirewallAction.GENDER_CODE: "gender",
    FirewallAction.PSEUDONYMISE_LOCAL_ID: "client_id",
}


class Purpose(StrEnum):
    RISK_STRATIFICATION_COMMISSIONING = "risk-stratification-commissioning"
    RISK_STRATIFICATION_CASE_FINDING = "risk-stratification-case-finding"


class CommonLawBasis(StrEnum):
    SECTION_251 = "section251"
    CONSENT = "consent"
    DIRECT_CARE = "direct-care"
    NOT_APPLICABLE = "not-applicable"


class FeedKind(StrEnum):
    ACTIVITY = "activity"
    OPT_OUT_LIST = "opt-out-list"
    REFERENCE = "reference"


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class CommonLaw(_Model):
    basis: CommonLawBasis
    reference: str | None = Field(None, min_length=3)
    expires: dt.date | None = None


class LegalBasis(_Model):
    article6: str = Field(min_length=3)
    article9: str = Field(min_length=3)
    commonLaw: CommonLaw


class OptOutRule(_Model):
    applies: bool
    appliedAt: Literal["ingest", "not-applied"]
    rationale: str = Field(min_length=10)


class IdentifierPolicy(_Model):
    permitted: list[Literal["nhs_number", "date_of_birth", "postcode", "gender", "client_id"]]


class Destruction(_Model):
    method: Literal["crypto-shred", "secure-delete"]
    description: str = Field(min_length=10)


class Approval(_Model):
    approvedBy: str = Field(min_length=3)
    role: str = Field(min_length=2)
    date: dt.date
    reference: str = Field(min_length=3)


class DeliveryCadence(_Model):
    cadence: str = Field(min_length=3)
    maxAgeDays: int = Field(gt=0)


class Period(_Model):
    """A length of time: ``value`` days, months or years."""

    value: int = Field(gt=0)
    unit: Literal["d", "m", "y"]

    def before(self, day: dt.date) -> dt.date:
        """The date this period before ``day`` (calendar months and years; 29 February -> 28th)."""
        months = {"d": 0, "m": self.value, "y": 12 * self.value}[self.unit]
        if not months:
            return day - dt.timedelta(days=self.value)
        total = day.year * 12 + day.month - 1 - months
        year, month = divmod(total, 12)
        month += 1
        last = (dt.date(year + (month == 12), month % 12 + 1, 1) - dt.timedelta(days=1)).day
        return dt.date(year, month, min(day.day, last))

    def describe(self) -> str:
        word = {"d": "day", "m": "month", "y": "year"}[self.unit]
        return f"{self.value} {word}{'s' if self.value != 1 else ''}"


class LegalHold(_Model):
    """A hold that suspends every destruction of the feed's data while it is in force."""

    reference: str = Field(min_length=3)
    reason: str = Field(min_length=10)
    placedBy: str = Field(min_length=3)
    placed: dt.date
    lifted: dt.date | None = None

    def in_force(self, day: dt.date) -> bool:
        return self.placed <= day and (self.lifted is None or self.lifted > day)


class RetentionPolicy(_Model):
    """How long each copy of the feed's data is kept; records in the warehouse follow the
    contract's ``slaProperties`` retention (rolling, by activity date)."""

    landing: Period  # raw deliveries, after successful ingest
    staging: Period  # staged files, after they are loaded into the warehouse
    legalHolds: list[LegalHold] = Field(default_factory=list)


class FeedIG(_Model):
    """Every IG fact a feed's contract must declare."""

    feedKind: FeedKind
    legalBasis: LegalBasis
    dataControllers: list[str] = Field(min_length=1)
    dataProcessors: list[str] = Field(min_length=1)
    permittedPurposes: list[Purpose] = Field(min_length=1)
    nationalDataOptOut: OptOutRule
    type1OptOut: OptOutRule
    identifierPolicy: IdentifierPolicy
    destruction: Destruction
    approval: Approval
    deliveryCadence: DeliveryCadence
    retentionPolicy: RetentionPolicy


#: The contract-level IG properties, in the order ``FeedIG`` declares them.
REQUIRED_FEED_PROPERTIES = tuple(FeedIG.model_fields)


class FilenamePattern(_Model):
    """How a supplier names a table's files: a regular expression matched against the whole file
    name, with a named group ``period`` (and optionally ``version``)."""

    regex: str = Field(min_length=3)
    periodFormat: str = Field("%Y-%m", description="strptime format of the period group, e.g. %Y%m")
    version: int = Field(1, ge=1, description="The version when the name has no version group.")


class DeliveryFormat(_Model):
    """A table's delivery layout as a supplier sends it (``customProperties`` property
    ``delivery`` on a schema object): file names, header aliases (matched ignoring case and
    spaces), delimiter, encoding, extra date formats per column, and columns to ignore."""

    filenames: list[FilenamePattern] = Field(default_factory=list)
    headerAliases: dict[str, list[str]] = Field(default_factory=dict)
    delimiter: str = Field(",", min_length=1, max_length=1)
    encoding: Literal["utf-8", "utf-8-sig", "cp1252", "latin-1", "iso-8859-1"] = "utf-8"
    dateFormats: dict[str, list[str]] = Field(default_factory=dict)
    ignoreColumns: list[str] = Field(default_factory=list)
