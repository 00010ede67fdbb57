"""Reading values out of a DICOM header that may be damaged or hostile.

Every de-identification rule reads the header through these helpers, so a bad VR, a wrong length or an
absurdly long value becomes "absent" (None or no text) instead of an exception or a slow scan.
"""

from __future__ import annotations

import functools
import warnings
from typing import Any

from pydicom.dataset import Dataset
from pydicom.multival import MultiValue
from pydicom.sequence import Sequence

MAX_VALUE_BYTES = 65536  # a header value longer than this is hostile; only its start is looked at


def _texts(value: Any) -> list[str]:
    """Every string a header value holds, whatever its VR or shape (bytes, multi-valued, PN, numbers).

    Nested datasets (sequence items) are skipped: callers that want them recurse explicitly.
    """
    if value is None or isinstance(value, (Dataset, Sequence)):
        return []
    if isinstance(value, (bytes, bytearray, memoryview)):
        raw = bytes(value)[:MAX_VALUE_BYTES]
        try:
            parts = raw.decode("utf-8").split("\\")
        except UnicodeDecodeError:
            parts = raw.decode("latin-1").split("\\")
    elif isinstance(value, str):
        parts = value.split("\\")
    elif isinstance(value, (list, tuple, MultiValue)):
        return [text for item in value for text in _texts(item)]
    else:
        parts = [str(value)]
    cleaned = (p.replace("\x00", " ").strip() for p in parts)
    return [p for p in cleaned if p]


def _get(header: Any, keyword: str) -> Any:
    # A hostile or damaged header can make even reading an element raise (bad VR, bad length).
    try:
        element = header.get(keyword) if hasattr(header, "get") else None
        if element is None:
            return None
        return getattr(element, "value", element)
    except Exception:
        return None


def _first_text(header: Any, keyword: str) -> str | None:
    texts = _texts(_get(header, keyword))
    return texts[0] if texts else None


def _sequence_items(header: Any, keyword: str) -> list[Any]:
    value = _get(header, keyword)
    try:
        return [item for item in (value or []) if hasattr(item, "get")]
    except TypeError:
        return []


def _quiet(function: Any) -> Any:
    """Run a header reader with pydicom's validation warnings silenced.

    Damaged headers are expected input here (they become None, never an exception); one warning per
    attribute per image would bury a build's progress output.
    """

    @functools.wraps(function)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return function(*args, **kwargs)

    return wrapper
