"""Draft a feed contract from a sample extract: ``safehaven contracts draft SAMPLE.csv --feed NAME``.

The draft reads a sample the way the gate will read deliveries and proposes, for every column,
a contract name, a type (dates with the formats seen, integers, numbers, text), a role
(direct identifier / quasi-identifier / attribute) and a firewall action, each with the reason
in words: by the column's name (``NHS_NO``, ``DOB``, ``Post Code``, ``Sex``, ``Client Name``) and
by the shape of its values (NHS-number-shaped with valid check digits, postcode-shaped,
e-mail- or phone-shaped, free text). It infers the delimiter and encoding and writes the
supplier's layout (file-name pattern, header aliases, delimiter, encoding, ignored empty columns)
into the table's ``delivery`` property.

Nothing the sample holds is written, printed or logged: proposals say *why* in terms of names,
shapes and shares, patterns are built from character classes (``[A-Z][0-9]+``), never from
values, and no code list is copied from the data (the gender vocabulary is the firewall's own).

The contract is written with ``status: draft`` and an empty ``approval``; ``contracts check``
and every flow refuse it until an IG lead has reviewed each column, filled the approval
(``approvedBy``, ``date``, ``reference``) and set ``status: active``.
"""

from __future__ import annotations

import codecs
import csv
import datetime as dt
import hashlib
import io
import re
from dataclasses import dataclass, field
from pathlib import Path

import polars as pl
import yaml

from pipeline.contracts._ig import IDENTIFIER_KIND, VENDOR, FeedKind, FirewallAction, Role
from pipeline.contracts.check import API_VERSION
from pipeline.contracts.model import date_regex
from pipeline.ingest.deliveries import DELIVERY_NAME
from pipeline.ingest.firewall import GENDER_CODES
from pipeline.ingest.rules import NULL_VALUES, normalised

__all__ = ["ColumnProposal", "Draft", "draft_contract", "sniff", "table_name", "write_draft"]

#: How much of a sample is read: enough for shapes and shares, bounded for memory.
SAMPLE_BYTES = 64 * 1024 * 1024
DELIMITERS = (",", ";", "\t", "|")
DATE_FORMATS = ("%Y-%m-%d", "%d/%m/%Y", "%Y%m%d", "%d-%m-%Y", "%d.%m.%Y", "%Y/%m/%d", "%m/%d/%Y",
                "%Y-%m-%dT%H:%M:%S", "%Y-%m-%d %H:%M:%S", "%d/%m/%Y %H:%M")
NHS_SHAPE = r"^\s*[0-9]{3}[ -]?[0-9]{3}[ -]?[0-9]{4}\s*$"
POSTCODE_SHAPE = r"^\s*[A-Za-z]{1,2}[0-9][A-Za-z0-9]?\s*[0-9][A-Za-z]{2}\s*$"
EMAIL_SHAPE = r"^[^@\s]+@[^@\s]+\.[A-Za-z]{2,}$"
PHONE_SHAPE = r"^\s*(?:\+44\s?|0)[0-9][0-9 ]{8,11}\s*$"

#: Names people give the four permitted identifiers, after ``_snake``.
VOCABULARY = (
    (r"nhs_?(no|num|number|nbr)|nhsno|new_nhs_no", "nhs_number"),
    (r"dob|d_o_b|date_?of_?birth|birth_?date|birth_dt|person_birth_date", "date_of_birth"),
    (r"post_?code|pcode|postcode_of_usual_address|usual_address_postcode", "postcode"),
    (r"gender|sex|gender_code|sex_code|person_stated_gender_code|person_gender_code", "gender"),
)
PERSON_NAME = re.compile(r"(^|_)(patient|client|person|service_user|forename|surname|given|family|first|last|full|"
                         r"middle|maiden|preferred)_?names?$|^names?$|^(fore|sur)name$")
CONTACT = re.compile(r"(^|_)(address|addr|street|house|flat|town|phone|tel|telephone|mobile|email|e_mail)(_|$)")
FREE_TEXT = re.compile(r"(^|_)(notes?|comments?|narrative|free_?text|remarks?|details|summary)(_|$)")
LOCAL_ID = re.compile(r"^(client|patient|person|service_user|local_patient|pas|resident|customer)_?(id|no|number|ref|"
                      r"identifier)$|^(mrn|hospital_?(no|number)|local_?id)$")
QUANTITY = re.compile(r"(^|_)(count|cost|costs|minutes|mins|duration|decile|age|amount|total|days|los|score|value|"
                      r"weight|height|price|quantity|qty|length|hours|number_of|n)(_|$)")
CODE_LIKE = re.compile(r"(^|_)(code|id|ref|no|number|identifier|key|type|flag|status|method|category)(_|$)")
KEY_LIKE = re.compile(r"(^|_)(id|ref|key|identifier)$")
ACTIVITY_PRIORITY = ("extract", "arrival", "admission", "appointment", "contact", "attendance", "activity", "event",
                     "episode", "start", "date")
GENDER_WORDS = tuple(GENDER_CODES)  # the firewall's own vocabulary (upper case; the draft adds other cases)


@dataclass
class ColumnProposal:
    """What the draft proposes for one column of the sample, and why (never a value)."""

    position: int
    header: str  # the file's header text
    name: str
    logical_type: str = "string"
    role: Role = Role.ATTRIBUTE
    action: FirewallAction = FirewallAction.KEEP
    required: bool = False
    formats: tuple[str, ...] = ()
    pattern: str | None = None
    minimum: int | None = None
    primary_key: bool = False
    ignore: bool = False
    why: str = ""
    filled: float = 0.0  # share of rows with a value

    @property
    def alias_needed(self) -> bool:
        return not self.ignore and normalised(self.header) != self.name


@dataclass
class Draft:
    feed: str
    table: str
    sample: str
    sample_sha256: str
    rows: int
    encoding: str
    delimiter: str
    columns: list[ColumnProposal] = field(default_factory=list)
    filename: dict | None = None
    activity_date: str | None = None

    def layout(self) -> dict:
        """The table's ``delivery`` property: only what differs from the native layout."""
        out: dict = {}
        if self.filename:
            out["filenames"] = [self.filename]
        aliases = {c.name: [c.header.strip()] for c in self.columns if c.alias_needed}
        if aliases:
            out["headerAliases"] = aliases
        if self.delimiter != ",":
            out["delimiter"] = self.delimiter
        if self.encoding not in {"utf-8", "utf-8-sig"}:
            out["encoding"] = self.encoding
        ignored = [c.header for c in self.columns if c.ignore]
        if ignored:
            out["ignoreColumns"] = ignored
        return out


# -- reading -------------------------------------------------------------------------------
def sniff(path: Path) -> tuple[str, str, str]:
    """(encoding, delimiter, text of the first SAMPLE_BYTES cut at a line end) of a sample."""
    data = Path(path).read_bytes()[:SAMPLE_BYTES]
    if len(data) == SAMPLE_BYTES and b"\n" in data:
        data = data[: data.rfind(b"\n") + 1]
    encoding = "utf-8-sig" if data.startswith(codecs.BOM_UTF8) else "utf-8"
    try:
        text = data.decode(encoding)
    except UnicodeDecodeError:
        try:
            text, encoding = data.decode("cp1252"), "cp1252"
        except UnicodeDecodeError:
            text, encoding = data.decode("latin-1"), "latin-1"
    lines = [line for line in text.splitlines()[:200] if line.strip()]
    best, best_fields = ",", 1
    for delimiter in DELIMITERS:
        try:
            counts = {len(row) for row in csv.reader(lines, delimiter=delimiter)}
        except csv.Error:
            continue
        if len(counts) == 1 and (fields := counts.pop()) > best_fields:
            best, best_fields = delimiter, fields
    return encoding, best, text


def _snake(header: str) -> str:
    name = header.strip()
    if re.search(r"[a-z][A-Z]", name):  # camelCase; an all-capitals name (LSOA21CD) stays one word
        name = re.sub(r"([a-z])([A-Z])", r"\1_\2", name)
    name = re.sub(r"[^A-Za-z0-9]+", "_", name).strip("_").lower()
    name = re.sub(r"_+", "_", name)
    if not name:
        return ""
    return name if name[0].isalpha() else f"c_{name}"


def _canonical(name: str) -> str:
    for pattern, canonical in VOCABULARY:
        if re.fullmatch(pattern, name):
            return canonical
    return name


def _share(series: pl.Series, pattern: str) -> float:
    present = series.drop_nulls()
    return float(present.str.contains(pattern).mean()) if present.len() else 0.0


def _nhs_checksum_share(series: pl.Series) -> float:
    """Share of present values that are ten digits with a valid check digit (the firewall's own
    status: valid, or well-formed but in a test, placeholder or unissued range)."""
    from pipeline.pseudonymise.nhs_number import NhsNumberStatus, with_nhs_number_status

    present = series.drop_nulls()
    if not present.len():
        return 0.0
    shaped = {NhsNumberStatus.VALID, NhsNumberStatus.TEST_RANGE, NhsNumberStatus.PLACEHOLDER,
              NhsNumberStatus.OUT_OF_RANGE}
    status = with_nhs_number_status(pl.DataFrame({"v": present}), "v", status="s", digits="d").collect()["s"]
    return float(status.is_in([str(s) for s in shaped]).mean())


def _date_formats(series: pl.Series) -> tuple[tuple[str, ...], float]:
    """The formats that together parse the most values (greedy, day-first before month-first),
    and the share of values they parse."""
    present = series.drop_nulls().str.strip_chars()
    present = present.filter(present.str.len_chars() >= 6)
    if not present.len() or not present.str.contains(r"[0-9]").all():
        return (), 0.0
    parsed = {fmt: present.str.to_datetime(fmt, strict=False).is_not_null() for fmt in DATE_FORMATS}
    remaining = pl.Series([True] * present.len())
    chosen: list[str] = []
    while True:
        gains = {fmt: int((ok & remaining).sum()) for fmt, ok in parsed.items() if fmt not in chosen}
        if "%d/%m/%Y" in chosen:
            gains.pop("%m/%d/%Y", None)
        if not gains:
            break
        fmt, gain = max(gains.items(), key=lambda kv: (kv[1], -DATE_FORMATS.index(kv[0])))
        if gain == 0:
            break
        chosen.append(fmt)
        remaining = remaining & ~parsed[fmt]
    share = 1.0 - float(remaining.mean())
    return tuple(chosen), share


_CLASSES = ((r"[0-9]", "[0-9]"), (r"[A-Z]", "[A-Z]"), (r"[a-z]", "[a-z]"))


def _shape(value: str) -> str:
    """A value as runs of character classes: 'AE000123' -> '[A-Z]+[0-9]+'; punctuation kept."""
    out, last = [], None
    for ch in value:
        cls = next((c for p, c in _CLASSES if re.fullmatch(p, ch)), re.escape(ch))
        if cls == last and cls in dict(_CLASSES).values():
            if not out[-1].endswith("+"):
                out[-1] += "+"
            continue
        out.append(cls)
        last = cls
    return "".join(out)


def _shape_pattern(series: pl.Series) -> str | None:
    """A pattern of the values' shapes when they have at most four (codes, ids); else None."""
    present = series.drop_nulls().str.strip_chars().unique()
    if not present.len() or present.len() > 200_000:
        return None
    shapes = sorted({_shape(v) for v in present.to_list()})
    if len(shapes) > 4 or any(len(s) > 60 for s in shapes):
        return None
    return r"^\s*(?:" + "|".join(shapes) + r")\s*$"


# -- proposing ------------------------------------------------------------------------------
def _propose(col: ColumnProposal, values: pl.Series, rows: int, kind: FeedKind) -> None:
    present = values.drop_nulls()
    col.filled = present.len() / rows if rows else 0.0
    name = col.name
    if not present.len() and not col.header.strip():
        col.ignore, col.why = True, "an unnamed column with no values (a trailing delimiter): ignored"
        return
    formats, date_share = _date_formats(values)
    is_date = date_share >= 0.95
    nhs_shaped = _share(values, NHS_SHAPE)
    reference = kind is FeedKind.REFERENCE

    def identifier(action: FirewallAction, why: str, role: Role = Role.DIRECT_IDENTIFIER) -> None:
        col.role, col.action, col.why = role, action, why

    if name == "nhs_number" or (nhs_shaped >= 0.9 and _nhs_checksum_share(values) >= 0.9):
        col.name = "nhs_number"
        identifier(FirewallAction.PSEUDONYMISE_NHS_NUMBER,
                   "named as an NHS number" if name == "nhs_number" else
                   f"{nhs_shaped:.0%} of values are 10 digits with a valid check digit")
    elif name == "date_of_birth" or ("birth" in name and is_date):
        col.name, col.logical_type, col.formats = "date_of_birth", "date", formats or ("%Y-%m-%d",)
        identifier(FirewallAction.AGE_AT_ACTIVITY, f"named as a date of birth; formats seen: {', '.join(formats)}")
    elif (name == "postcode" or (postcode_shaped := _share(values, POSTCODE_SHAPE)) >= 0.9) and not reference:
        col.name = "postcode"
        identifier(FirewallAction.POSTCODE_GEOGRAPHY, "named as a postcode" if name == "postcode" else
                   f"{postcode_shaped:.0%} of values are postcode-shaped")
    elif name == "gender" and not reference:
        identifier(FirewallAction.GENDER_CODE, "named as gender or sex: mapped to the NHS Data Dictionary codes",
                   Role.QUASI_IDENTIFIER)
    elif PERSON_NAME.search(name) or CONTACT.search(name):
        identifier(FirewallAction.DROP, "named as a person's name, address or contact detail: dropped")
    elif LOCAL_ID.search(name) and not reference:
        identifier(FirewallAction.PSEUDONYMISE_LOCAL_ID, "named as a local person identifier: keyed pseudonym")
    elif FREE_TEXT.search(name):
        identifier(FirewallAction.DROP, "named as free text, which may name people: dropped")
    elif _share(values, EMAIL_SHAPE) >= 0.5 or _share(values, PHONE_SHAPE) >= 0.8:
        identifier(FirewallAction.DROP, "values are e-mail- or phone-shaped: dropped")
    elif not is_date and present.len() and float(present.str.count_matches(r"\s+").mean()) >= 2 \
            and present.n_unique() > 0.5 * present.len() and not reference:
        identifier(FirewallAction.DROP, "values are free text (several words, mostly distinct), which may name "
                                        "people: dropped")
    else:
        col.why = "an attribute"
    if col.role is not Role.ATTRIBUTE or col.ignore:
        if kind is FeedKind.OPT_OUT_LIST and col.action is FirewallAction.PSEUDONYMISE_NHS_NUMBER:
            col.required = col.filled == 1.0
        return
    integer = present.str.contains(r"^\s*[+-]?[0-9]+\s*$").all()
    decimal = present.str.contains(r"^\s*[+-]?[0-9]+(?:\.[0-9]+)?\s*$").all()
    leading_zero = present.str.contains(r"^\s*0[0-9]").any()
    many = present.n_unique() > 20
    if is_date:
        col.logical_type, col.formats = "date", formats
        col.why = f"dates ({date_share:.1%} parse; formats seen: {', '.join(formats)})"
    elif present.len() and decimal and not leading_zero and not CODE_LIKE.search(name) and \
            (QUANTITY.search(name) or (many and not integer)):
        col.logical_type = "integer" if integer else "number"
        if float(present.str.strip_chars().cast(pl.Float64).min()) >= 0:
            col.minimum = 0
        col.why = f"{'whole ' if integer else ''}numbers"
    else:
        col.pattern = _shape_pattern(values) if present.len() else None
        col.why = "codes or identifiers of a few shapes" if col.pattern else "text"


def _primary_key(columns: list[ColumnProposal], frame: pl.DataFrame) -> None:
    """The first key-named attribute filled and unique in the sample is proposed as the primary
    key (required). Other columns are proposed optional: one sample cannot show a column is never
    blank, and a wrong ``required`` would quarantine a good delivery; the reviewer tightens them."""
    for col in columns:
        if col.role is Role.ATTRIBUTE and col.logical_type == "string" and KEY_LIKE.search(col.name) \
                and col.filled == 1.0 and frame.height >= 20 and frame[f"c{col.position}"].n_unique() == frame.height:
            col.primary_key = col.required = True
            col.why += "; filled and unique in the sample: proposed as the primary key"
            return


def _activity_date(columns: list[ColumnProposal]) -> str | None:
    dates = [c.name for c in columns if c.logical_type == "date" and c.role is Role.ATTRIBUTE]
    for word in ACTIVITY_PRIORITY:
        for name in dates:
            if word in name.split("_"):
                return name
    return dates[0] if dates else None


def _filename_pattern(name: str, table: str) -> dict | None:
    """A regular expression for files named like the sample (None when the name is native):
    a date-like run of digits becomes the period group, a ``v<digits>`` the version group."""
    if (m := DELIVERY_NAME.match(name)) and m["table"] == table:
        return None
    periods = ((r"\d{4}-\d{2}-\d{2}", "%Y-%m-%d"), (r"\d{8}", "%Y%m%d"), (r"\d{4}-\d{2}", "%Y-%m"),
               (r"\d{6}", "%Y%m"), (r"\d{4}", "%Y"))
    for shape, fmt in periods:
        for m in re.finditer(rf"(?<!\d){shape}(?!\d)", name):
            try:
                dt.datetime.strptime(m.group(0), fmt)
            except ValueError:
                continue
            before, after = name[: m.start()], name[m.end():]
            version = re.search(r"(?i)([ _-])v(\d+)(?=\.)", after)
            after_re = re.escape(after)
            if version:
                after_re = (re.escape(after[: version.start()]) + re.escape(version.group(1)) + r"[vV](?P<version>\d+)"
                            + re.escape(after[version.end():]))
            return {"regex": re.escape(before) + rf"(?P<period>{shape})" + after_re, "periodFormat": fmt}
    return None


def _read_sample(sample: Path) -> tuple[str, str, list[str], pl.DataFrame]:
    """(encoding, delimiter, header, every cell as text) of one sample, bounded by SAMPLE_BYTES."""
    encoding, delimiter, text = sniff(sample)
    lines = text.splitlines()
    if not lines:
        raise ValueError(f"{sample.name}: the sample is empty")
    header = next(csv.reader([lines[0].lstrip("\ufeff")], delimiter=delimiter))
    width = len(header)
    try:
        frame = pl.read_csv(io.BytesIO(text.encode("utf-8")), separator=delimiter, has_header=False, skip_rows=1,
                            new_columns=[f"c{i}" for i in range(width)], infer_schema=False,
                            null_values=NULL_VALUES, truncate_ragged_lines=False)
    except pl.exceptions.PolarsError:  # its message quotes the row: never passed on
        raise ValueError(f"{sample.name}: could not be read as a CSV with delimiter {delimiter!r} (a row with the "
                         "wrong number of fields, or a broken quote); no value is shown") from None
    if frame.width != width:
        raise ValueError(f"{sample.name}: rows do not have the header's {width} fields")
    return encoding, delimiter, header, frame


def draft_contract(samples: Path | list[Path], feed: str, table: str | None = None,
                   kind: FeedKind = FeedKind.ACTIVITY) -> Draft:
    """Read one or more samples of one table (several months' extracts show more of each
    column's variety) and propose the table; nothing is written."""
    samples = [Path(s) for s in (samples if isinstance(samples, list | tuple) else [samples])]
    encoding, delimiter, header, frame = _read_sample(samples[0])
    digest = hashlib.sha256()
    for sample in samples[1:]:
        other = _read_sample(sample)
        if (other[0], other[1]) != (encoding, delimiter) or [normalised(h) for h in other[2]] != \
                [normalised(h) for h in header]:
            raise ValueError(f"{sample.name}: not the same layout as {samples[0].name} (encoding, delimiter or "
                             "header differ); draft each layout separately")
        frame = pl.concat([frame, other[3]])
    for sample in samples:
        digest.update(sample.read_bytes())
    rows = frame.height
    name = table or table_name(samples[0].name, feed)
    draft = Draft(feed=feed, table=name, sample=", ".join(s.name for s in samples), sample_sha256=digest.hexdigest(),
                  rows=rows, encoding=encoding, delimiter=delimiter)
    used: set[str] = set()
    for i, cell in enumerate(header):
        proposal = ColumnProposal(position=i, header=cell, name=_canonical(_snake(cell)) or f"column_{i + 1}")
        _propose(proposal, frame[f"c{i}"], rows, kind)
        if proposal.ignore:
            proposal.name = f"ignored_{i + 1}"
        elif proposal.name in used:
            proposal.name = f"{proposal.name}_{i + 1}"
        used.add(proposal.name)
        draft.columns.append(proposal)
    _primary_key(draft.columns, frame)
    draft.activity_date = _activity_date(draft.columns)
    draft.filename = _filename_pattern(samples[0].name, name)
    return draft


def table_name(file_name: str, feed: str) -> str:
    if m := DELIVERY_NAME.match(file_name):
        return m["table"]
    stem = re.sub(r"\d{4}-?\d{2}(-?\d{2})?", "", Path(file_name).stem)
    stem = re.sub(r"(?i)(^|_)(v\d+|extract|export|data|file)(?=_|$)", "", stem)
    return _snake(stem) or feed


# -- writing --------------------------------------------------------------------------------
def _ig(prop: str, value, description: str | None = None) -> dict:
    out = {"property": prop, "vendor": VENDOR, "value": value}
    if description:
        out["description"] = description
    return out


def _column_yaml(col: ColumnProposal, kind: FeedKind) -> dict:
    prop: dict = {"name": col.name, "description": f"Drafted: {col.why}.", "logicalType": col.logical_type,
                  "physicalType": {"date": "DATE", "integer": "BIGINT", "number": "DOUBLE"}.get(col.logical_type,
                                                                                                 "VARCHAR"),
                  "required": col.required, "classification": col.role.value}
    if col.primary_key:
        prop["primaryKey"] = True
    options = {}
    if col.logical_type == "date":
        options["format"] = "yyyy-MM-dd"
    if col.minimum is not None:
        options["minimum"] = col.minimum
    if options:
        prop["logicalTypeOptions"] = options
    if col.action is FirewallAction.GENDER_CODE:
        words = list(dict.fromkeys(w for g in GENDER_WORDS for w in (g, g.title(), g.lower())))
        prop["enum"] = [{"value": w} for w in words]
    custom = [_ig("firewall", col.action.value)]
    if col.logical_type == "date":
        custom.append(_ig("acceptedFormats", list(col.formats),
                          "strptime formats accepted in deliveries; the firewall parses each"))
    prop["customProperties"] = custom
    quality = []
    rule = {"type": "library", "metric": "invalidValues"}
    if col.action is FirewallAction.PSEUDONYMISE_NHS_NUMBER:
        quality.append({"name": f"{col.name}_format", **rule, "arguments": {"pattern": NHS_SHAPE},
                        "mustBeLessOrEqualTo": 0 if kind is FeedKind.OPT_OUT_LIST else 5, "unit": "percent",
                        "severity": "error", "dimension": "conformity",
                        "description": "NHS numbers are 10 digits; many that are not suggest a shifted column."})
    elif col.logical_type == "date":
        identifier = col.role is Role.DIRECT_IDENTIFIER
        quality.append({"name": f"{col.name}_format", **rule, "arguments": {"pattern": date_regex(col.formats)},
                        **({"mustBeLessOrEqualTo": 0.5, "unit": "percent"} if identifier else
                           {"mustBe": 0, "unit": "rows"}),
                        "severity": "error", "dimension": "conformity",
                        "description": f"{col.name} must be a date in one of the accepted formats."})
    elif col.action is FirewallAction.POSTCODE_GEOGRAPHY:
        quality.append({"name": f"{col.name}_format", **rule, "arguments": {"pattern": POSTCODE_SHAPE},
                        "mustBeLessOrEqualTo": 2, "unit": "percent", "severity": "warning",
                        "dimension": "conformity", "description": "Postcodes should look like UK postcodes."})
    elif col.action is FirewallAction.GENDER_CODE:
        quality.append({"name": f"{col.name}_code", **rule,
                        "arguments": {"validValues": [e["value"] for e in prop["enum"]]}, "mustBe": 0,
                        "unit": "rows", "severity": "error", "dimension": "conformity",
                        "description": "Gender must use a code or word the firewall maps."})
    elif col.pattern and col.action is FirewallAction.KEEP:  # a warning: a sample cannot show every shape
        quality.append({"name": f"{col.name}_shape", **rule, "arguments": {"pattern": col.pattern}, "mustBe": 0,
                        "unit": "rows", "severity": "warning", "dimension": "conformity",
                        "description": f"{col.name} keeps the shapes seen in the sample (review: list codes as an "
                                       "enum where they are a fixed set, and make the rule an error)."})
    if quality:
        prop["quality"] = quality
    return prop


DRAFT_NOTE = ("# DRAFT written by `safehaven contracts draft` from {samples}. Every column's role and firewall action\n"
              "# is a proposal (its description says why). An IG lead reviews each one, fills the approval\n"
              "# (approvedBy, date, reference) and sets status: active; until then no flow will use this contract.\n")


def write_draft(drafts: list[Draft], out: Path, kind: FeedKind = FeedKind.ACTIVITY,
                ig_from: Path | None = None, force: bool = False) -> Path:
    """Write one contract holding every drafted table; IG facts from ``ig_from`` when given
    (a contract whose legal basis, controllers, purposes and retention apply), approval empty."""
    out = Path(out)
    if out.exists() and not force:
        raise FileExistsError(f"{out} exists; pass --force to replace it, or --out to write elsewhere")
    feed = drafts[0].feed
    template = yaml.safe_load(Path(ig_from).read_text()) if ig_from else {}
    schema = []
    kinds = set()
    for d in drafts:
        props = [_column_yaml(c, kind) for c in d.columns if not c.ignore]
        kinds |= {IDENTIFIER_KIND[c.action] for c in d.columns
                  if c.action in IDENTIFIER_KIND and c.role is Role.DIRECT_IDENTIFIER}
        if any(c.action is FirewallAction.GENDER_CODE for c in d.columns):
            kinds.add("gender")
        custom = []
        if d.activity_date:
            custom.append(_ig("activityDate", d.activity_date, "the column age is computed at"))
        if layout := d.layout():
            custom.append(_ig("delivery", layout, "the supplier's layout, as drafted from the sample"))
        table = {"name": d.table, "physicalName": d.table, "physicalType": "file",
                 "description": f"Drafted from {d.sample} ({d.rows:,} rows).", "properties": props}
        if custom:
            table["customProperties"] = custom
        schema.append(table)

    ig_props = [c for c in template.get("customProperties") or [] if c.get("vendor") == VENDOR]
    ig_props = [c for c in ig_props if c.get("property") not in {"approval", "feedKind", "identifierPolicy"}]
    ig_props = [_ig("feedKind", kind.value, "activity, opt-out-list or reference"), *ig_props,
                _ig("identifierPolicy", {"permitted": sorted(kinds)}, "identifiers that may pass the firewall, "
                    "transformed (drafted from the columns found: review)"),
                _ig("approval", {"approvedBy": "", "role": "ig-lead", "date": None, "reference": ""},
                    "filled by the IG lead who approves this contract")]
    retention = next((s for s in template.get("slaProperties") or [] if s.get("property") == "retention"), None)
    element = next((f"{d.table}.{d.activity_date}" for d in drafts if d.activity_date), drafts[0].table)
    sla = [{**(retention or {"property": "retention", "value": 5, "unit": "y", "driver": "regulatory"}),
            "element": element}]
    sla += [s for s in template.get("slaProperties") or [] if s.get("property") != "retention"]
    doc = {
        "apiVersion": API_VERSION, "kind": "DataContract", "id": f"safehaven-{feed}", "name": feed,
        "version": "0.1.0", "status": "draft",
        **{k: template[k] for k in ("domain", "tenant", "tags") if k in template},
        "description": template.get("description") or {
            "purpose": f"Drafted from a sample of the {feed} feed; to be completed by the IG lead."},
        "schema": schema, "slaProperties": sla,
        "roles": template.get("roles") or [{"role": "ig-lead", "access": "approve",
                                            "description": "Approves this contract, retention and destruction."}],
        **({"context": template["context"]} if "context" in template else {}),
        "customProperties": ig_props,
    }
    out.parent.mkdir(parents=True, exist_ok=True)
    samples = ", ".join(d.sample for d in drafts)
    out.write_text(DRAFT_NOTE.format(samples=samples) + yaml.safe_dump(doc, sort_keys=False, allow_unicode=True,
                                                                           width=110))
    return out
