"""Rule-based scrubbing of identifiers in report text, and of the text fields of a manifest.

``scrub_text`` replaces, in this order, e-mail addresses, phone numbers, dates, street addresses,
MRN/accession-like identifiers and titled or labelled names with typed placeholders such as
``[DATE]`` or ``[NAME]``. Rules, not a model: they catch the common written forms (see
``docs/deid.md``) and err on the side of removing; unlabelled bare names ("seen with John") are not
found. Clinical numbers (sizes such as "3 cm", vertebral levels "T12", counts) are left alone.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from pathlib import Path

_MONTH = (r"(?:Jan(?:uary)?|Feb(?:ruary)?|Mar(?:ch)?|Apr(?:il)?|May|June?|July?|Aug(?:ust)?|"
          r"Sep(?:t(?:ember)?)?|Oct(?:ober)?|Nov(?:ember)?|Dec(?:ember)?)\.?")
_NAME = r"[A-Z][a-zA-Z'\-]+(?:\s+[A-Z]\.)?(?:\s+[A-Z][a-zA-Z'\-]+)?"

# (placeholder, pattern); applied in order, so earlier kinds win (an e-mail is not a name).
RULES: tuple[tuple[str, re.Pattern], ...] = (
    ("EMAIL", re.compile(r"\b[\w.+-]+@[\w-]+(?:\.[\w-]+)+\b")),
    ("PHONE", re.compile(r"(?:\+\d{1,3}[\s.-]?)?(?:\(\d{2,4}\)\s?|\b\d{3}[\s.-])\d{3}[\s.-]\d{4}\b"
                         r"|\b(?:tel|phone|ph|fax|pager|ext)\.?:?\s*[\d()+\s.-]{4,}\d", re.IGNORECASE)),
    ("DATE", re.compile(
        r"\b\d{4}[-/.]\d{1,2}[-/.]\d{1,2}\b"                                   # 2024-01-31
        r"|\b\d{1,2}(?P<sep>[-/.])\d{1,2}(?P=sep)\d{2,4}\b"                    # 31/01/2024, 1.31.24
        rf"|\b\d{{1,2}}(?:st|nd|rd|th)?\s+{_MONTH},?\s+\d{{2,4}}\b"             # 31 Jan 2024
        rf"|\b{_MONTH}\s+\d{{1,2}}(?:st|nd|rd|th)?,?\s+\d{{2,4}}\b"              # January 31st, 2024
        rf"|\b{_MONTH}\s+\d{{4}}\b"                                            # Jan 2024
        r"|\b(?:19|20)\d{2}(?:0[1-9]|1[0-2])(?:0[1-9]|[12]\d|3[01])\b",        # 20240131 (DICOM DA)
        re.IGNORECASE)),
    ("ADDRESS", re.compile(
        r"\b\d{1,6}\s+(?:[A-Z][a-z]+\s+){1,3}(?:Street|St|Avenue|Ave|Road|Rd|Boulevard|Blvd|Lane|Ln|Drive|Dr|"
        r"Court|Ct|Place|Pl|Way|Terrace|Highway|Hwy)\b\.?(?:,?\s+(?:Apt|Suite|Unit)\.?\s*\w+)?")),
    ("ID", re.compile(
        r"\b(?:MRN|MR|medical record|accession|acc|patient id|pid|id|record|case|study)\s*(?:no\.?|number|#)?"
        r"\s*[:#]?\s*[A-Z]*\d[\w-]{3,}\b"                                      # labelled: MRN: 12345678
        r"|\b[A-Z]{0,3}\d{7,}\b",                                              # bare long numbers
        re.IGNORECASE)),
    ("NAME", re.compile(
        rf"\b(?:Dr|Mr|Mrs|Ms|Miss|Prof|Doctor)\.?\s+{_NAME}"                   # Dr. Smith, Mrs Jane Doe
        rf"|\b{_NAME},\s+(?:MD|DO|RN|PA-C|NP|MBBS|PhD)\b"                      # John Smith, MD
        rf"|(?i:\b(?:patient|pt|name|signed by|dictated by|read by|reviewed by|attending|"
        rf"radiologist|physician)\s*(?:name)?\s*:\s*){_NAME}")),               # Signed by: Jane Doe
)


def scrub_text(text: str) -> str:
    """``text`` with identifiers replaced by ``[EMAIL]``, ``[PHONE]``, ``[DATE]``, ``[ADDRESS]``,
    ``[ID]`` and ``[NAME]``; for a labelled name the label stays ("Signed by: [NAME]")."""
    for kind, pattern in RULES:
        text = pattern.sub(lambda m, kind=kind: _placeholder(kind, m), text)
    return text


def _placeholder(kind: str, match: re.Match) -> str:
    found = match.group(0)
    if kind == "NAME" and ":" in found:
        return found[: found.index(":") + 1] + f" [{kind}]"
    return f"[{kind}]"


TEXT_FIELDS = ("text", "findings", "impression", "indication", "report")


def scrub_record(record: dict, fields: Iterable[str] = TEXT_FIELDS) -> dict:
    """A copy of a manifest record with its free-text fields scrubbed (other fields unchanged)."""
    return {key: scrub_text(value) if key in fields and isinstance(value, str) else value
            for key, value in record.items()}


def scrub_manifest(path: str | Path, out: str | Path, fields: Iterable[str] = TEXT_FIELDS) -> int:
    """Write a copy of a JSON-lines manifest with the text fields scrubbed; returns the line count."""
    import json

    from preprocessing.errors import ManifestError

    fields = tuple(fields)
    n = 0
    with open(path, encoding="utf-8") as src, open(out, "w", encoding="utf-8") as dst:
        for n, line in enumerate(src, start=1):
            if not line.strip():
                continue
            try:
                record = json.loads(line)
            except json.JSONDecodeError as err:
                raise ManifestError(path, n, None, f"not JSON: {err}") from err
            dst.write(json.dumps(scrub_record(record, fields)) + "\n")
    return n
