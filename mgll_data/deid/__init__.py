"""De-identification: keyed pseudonyms, the DICOM header allow-list, and report text scrubbing.

Privacy model. A built dataset is meant to be shared, so:
- ids are replaced by keyed HMAC-SHA256 pseudonyms; the key (the "salt") lives outside the dataset, so
  nobody holding only the dataset can re-derive a pseudonym from a known MRN, while the data owner gets
  the same pseudonyms on every rebuild (incremental builds link up);
- nothing from a DICOM header reaches a row unless `header_metadata` lets it through, and even then
  coded values are normalised and free text is scrubbed;
- report text goes through `scrub_text`, which replaces identifiers with typed placeholders. Rules are
  tuned for high recall on PHI and high precision on clinical wording ("5 mm", "T12", "C5-C6", "NG tube").

Regexes are compiled once at import: `scrub_text` runs once per image on the build's hot path.

Modules: `keys` (salt, pseudonyms), `header` (reading damaged or hostile headers safely), `burned_in`
(refusing images with text in their pixels), `phi` (the header's identifying values), `metadata` (the
header allow-list) and `text` (report scrubbing). Callers use the names re-exported here.
"""

from mgll_data.deid.burned_in import refuse_burned_in_text
from mgll_data.deid.header import MAX_VALUE_BYTES
from mgll_data.deid.keys import (
    MIN_SALT_BYTES,
    PSEUDONYM_HEX,
    SALT_BYTES,
    SALT_ENV,
    default_salt_path,
    image_id,
    load_salt,
    pseudonym,
    source_key,
)
from mgll_data.deid.metadata import (
    DESCRIPTION_MAX_CHARS,
    DESCRIPTION_MAX_DIGITS,
    METADATA_KEYS,
    header_metadata,
)
from mgll_data.deid.names import AFTER_CUE_WINDOW, NAME_NEIGHBOUR_PASSES
from mgll_data.deid.phi import MIN_PHI_CHARS, header_ids, header_phi
from mgll_data.deid.text import scrub_text, strip_control_characters

__all__ = [
    "AFTER_CUE_WINDOW",
    "DESCRIPTION_MAX_CHARS",
    "DESCRIPTION_MAX_DIGITS",
    "MAX_VALUE_BYTES",
    "METADATA_KEYS",
    "MIN_PHI_CHARS",
    "MIN_SALT_BYTES",
    "NAME_NEIGHBOUR_PASSES",
    "PSEUDONYM_HEX",
    "SALT_BYTES",
    "SALT_ENV",
    "default_salt_path",
    "header_ids",
    "header_metadata",
    "header_phi",
    "image_id",
    "load_salt",
    "pseudonym",
    "refuse_burned_in_text",
    "scrub_text",
    "source_key",
    "strip_control_characters",
]
