"""Adversarial privacy tests of the whole builder: a hostile MIMIC-shaped export built on real DICOMs
(deid-data's DX chest radiograph, pydicom-data's CR, pydicom's CT) with PHI planted in every identifying
attribute, in the allow-listed attributes themselves, in sequences, private tags, odd character sets,
absurdly long values, reports and file names. Everything the dataset folder holds is scanned for every
planted string, one parametrised case per category, so a leak names itself."""

from __future__ import annotations

import dataclasses
import json
import re
import struct
import warnings
from pathlib import Path

import pyarrow.parquet as pq
import pydicom
import pytest
from pydicom.dataelem import DataElement
from pydicom.dataset import Dataset
from pydicom.sequence import Sequence
from pydicom.uid import generate_uid

from mgll_data import imaging
from mgll_data.build import build_dataset
from mgll_data.card import write_card
from mgll_data.pipeline import load_pipeline

deid_data = pytest.importorskip("deid_data")
data_store = pytest.importorskip("data_store")  # the pydicom-data package's files
CAT_DX = Path(deid_data.__file__).parent / "data" / "animals" / "cat.dcm"
RG1_CR = Path(data_store.__file__).parent / "data" / "RG1_UNCR.dcm"
CT_SMALL = Path(pydicom.data.get_testdata_file("CT_small.dcm"))

# ---------------------------------------------------------------------------------- planted values
# Each category lists the strings that must never be found in the dataset folder. Names are checked per
# component (>= 3 characters) as well as whole.

PATIENT_NAME = "Wüstenhagen^Zoë Amélie^^Dr.^III"
HEADER_NAMES = {
    "PatientName": PATIENT_NAME,
    "OtherPatientNames": "Quimby^Harriet",
    "PatientBirthName": "Ostrowski^Zofia",
    "PatientMotherBirthName": "Pemberton-Vale^Imogen",
}
STAFF_NAMES = {
    "ReferringPhysicianName": "O'Brien-Smyth^Siobhán",
    "PerformingPhysicianName": "Kowalczyk^Łukasz",
    "OperatorsName": ["Nguyen^Thi^Tranh", "Abernathy^Cornelius"],
    "NameOfPhysiciansReadingStudy": "Delacroix^Henriette",
    "PhysiciansOfRecord": "Thistlewood^Barnaby",
}
HEADER_IDS = {
    "PatientID": "MRN-0098765",
    "OtherPatientIDs": ["ALT 5551234", "X99887766"],
    "IssuerOfPatientID": "QUARRYGEN-MPI",
    "AccessionNumber": "ACC20240117Q",
    "StudyID": "STY4455",
    "AdmissionID": "ADM-77120",
    "PerformedProcedureStepID": "PPS-66120",
}
HEADER_DATES = {
    "PatientBirthDate": "19270304",
    "StudyDate": "20230917",
    "SeriesDate": "20230917",
    "AcquisitionDate": "20230917",
    "ContentDate": "20230918",
    "StudyTime": "141530.123456",
    "AcquisitionDateTime": "20230917141530",
}
HEADER_PLACES = {
    "InstitutionName": "Hôpital Saint-Éloi Quarrington",
    "InstitutionAddress": "4417 Quarrington Blvd, Springfield, IL 62704",
    "InstitutionalDepartmentName": "Thoracic Imaging Vauxhall Wing",
    "PatientAddress": "88 Rue Mouffetard, 69002 Lyon",
    "PatientTelephoneNumbers": "(217) 555-0143",
    "ReferringPhysicianTelephoneNumbers": "+44 20 7946 0321",
}
HEADER_EQUIPMENT = {
    "StationName": "RADROOM7-QX",
    "DeviceSerialNumber": "SN-88412-ZQ",
    "DetectorID": "DET-55190",
    "PlateID": "PLT-3321K",
}
# PHI typed into the attributes that ARE allowed through (codes and descriptions).
ALLOW_LISTED = {
    "StudyDescription": "CHEST PA - JOHN SMITH 0123456",
    "SeriesDescription": "PA MRN 7654321 2023-09-17",
    "ManufacturerModelName": "DigitalDiagnost SN 99812345",
    "BodyPartExamined": "CHEST WÜSTENHAGEN",
    "ViewPosition": "PA 20230917",
    "Modality": "DX^Bobbington",
}
ALLOW_LISTED_SECOND = {  # a second image: names that are not in its own header at all
    "StudyDescription": "Thorax Ramachandran Priya 17/09/2023",
    "SeriesDescription": "Lateral - Tech: Okonkwo",
    "ManufacturerModelName": "Fenwick",
    "BodyPartExamined": "Gallagher",
    "ViewPosition": "Tuesday",
    "Modality": "Hargreaves",
}
SEQUENCE_PHI = {
    "RequestedProcedureID": "RPID-44321",
    "ScheduledProcedureStepID": "SPS-90817",
    "RequestedProcedureDescription": "CXR re Quentin Blackwood",
    "RequestingPhysician": "Featherstonehaugh^Ignatius",
    "ReferencedSOPInstanceUID": "1.2.826.0.1.3680043.2.1125.99.4242",
}
PRIVATE_PHI = ["Marchbanks Thaddeus", "MRN 31415926", "Ffoulkes-Ashby"]
LATIN1_NAME = "Müller^Jürgen"  # written as ISO_IR 100 (latin-1) bytes
UTF8_NAMES = "Дмитриев^Игорь=Παπαδόπουλος^Νίκος"  # ISO_IR 192
MISENCODED_NAME = "Håkonsen^Ødegård"  # latin-1 bytes under an ISO_IR 192 (UTF-8) declaration
LONG_TAIL_NAME = "Ignatius Longfellow"

REPORT_NAMES = [
    "Jane Doe", "O'Brien-Smith", "Bartholomew Fairweather-Lindqvist", "Featherstonehaugh", "Adebayo-Williams",
    "Priya Ramachandran", "Wustenhagen", "Zoe",
    # names without a title (issue 13, item 3), in REPORT_B
    "Hortensia Blackwood", "Lucius Havercamp", "PETTIGREW", "AMBROSE", "Octavia Quenneville", "Ignatius Thorncroft",
]
REPORT_DATES = [
    "09/17/2023", "2023-09-17", "17.09.2023", "Sept 17, 2023", "17 September 2023", "17-Sep-2023",
    "September 17th, 2023", "9/17/23", "2023/09/17", "the 17th of September 2023",
    "17SEP2023",
]
REPORT_IDS = ["00451234", "RAD-2023-0091734", "MRN-0098765", "ACC20240117Q", "10000032", "50414267"]
REPORT_CONTACTS = [
    "(312) 555-0198", "312.555.0177", "pacs.example-hospital.org", "zoe.wustenhagen@example-hospital.org",
    "https://pacs.example-hospital.org/viewer?id=8812", "pacs2.example-hospital.org",
]
REPORT_ADDRESSES = [
    "1600 Wexford Hollow Road", "Wexford Hollow", "Evanston, IL 60201", "60201", "Apt 9C", "22 Baker Street",
    "NW1 6XE", "Lakeshore Mercy", "Lakeshore",
]
REPORT_AGES = ["93-year-old", "aged 102", "age: 97", "97F"]

REPORT_A = """                                 FINAL REPORT
 EXAMINATION:  CHEST (PA AND LAT)
 INDICATION:  93-year-old woman, MRN: 00451234, with cough.
 FINDINGS:
 Wüstenhagen reports chest pain since 09/17/2023. Ms Wüstenhagen was seen on 2023-09-17 and 17.09.2023;
 ZOË was also imaged Sept 17, 2023, 17 September 2023, 17-Sep-2023, September 17th, 2023, 9/17/23,
 2023/09/17 and the 17th of September 2023. Prior exam under MRN-0098765, accession ACC20240117Q,
 Acc# RAD-2023-0091734, patient 10000032 study 50414267. The patient is aged 102 (age: 97 on the form).
 Lives at 1600 Wexford Hollow Road, Apt 4, Evanston, IL 60201, previously Apt 9C, 22 Baker Street, NW1 6XE.
 Requested by Featherstonehaugh. Pt wustenhagen (ASCII spelling) and Zoe agreed; prior films from
 Lakeshore Mercy Hospital dated 17SEP2023, see pacs2.example-hospital.org/viewer?id=1.
 There is a small left pleural effusion. No pneumothorax.
 IMPRESSION:
 Small left pleural effusion. Findings discussed with Jane Doe, RN at 3:15 pm by Dr. O'Brien-Smith via
 phone (312) 555-0198, fax 312.555.0177. Images at https://pacs.example-hospital.org/viewer?id=8812 ;
 questions to zoe.wustenhagen@example-hospital.org. Kowalczyk and Siobhán O'Brien-Smyth reviewed.

 I, Priya Ramachandran, have personally reviewed the images.
 Signed: Adebayo-Williams, T.
 Electronically signed by: Bartholomew Fairweather-Lindqvist, MD on 09/18/2023 10:02
"""
# Names without a title, an age with its sex letter, and control characters: a NUL, terminal colour codes
# (one inside a name, where it would split the name from the rules) and a bidi override.
REPORT_B = """INDICATION: 97F with cough.\x00
FINDINGS: Mild cardiomegaly. Herr Müller and Jürgen (see header) have no pneumothorax.
IMPRESSION: Cardiomegaly. Follow-up advised. \x1b[1;31mCritical\x1b[0m result d/w PETTIGREW, AMBROSE per
Hortensia Blackwood; PCP: Lucius Havercamp. Seen by Ignatius Thorn\x1b[0mcroft.\u202e
Report by Octavia Quenneville
"""
REPORT_C = """FINDINGS: Mild cardiomegaly. Дмитриев Игорь and Παπαδόπουλος were compared; Håkonsen and Ødegård called.
IMPRESSION: Cardiomegaly. Quarrington Vauxhall Wing study, station RADROOM7-QX, serial SN-88412-ZQ.
"""
REPORT_PLAIN = "FINDINGS: Lungs are clear. No pleural effusion.\nIMPRESSION: No acute cardiopulmonary process.\n"

# File names that look like PHI: they must never surface, not even in reject messages.
PHI_FILE_STEM = "WUSTENHAGEN_ZOE_MRN-0098765_19270304"
PHOTOMETRIC_PHI = "SMITHJOHN"


def _name_components(value: str) -> list[str]:
    return [w for w in re.split(r"[\s^=,.'’\-]+", value) if len(w) >= 3 and w.upper() not in {"III"}]


def _values(mapping: dict) -> list[str]:
    out: list[str] = []
    for value in mapping.values():
        out.extend(value if isinstance(value, list) else [value])
    return out


def _needles(values: list[str], names: bool = False) -> list[str]:
    found = set(values)
    if names:
        for value in values:
            found.update(_name_components(value))
    return sorted(found)


PLANTED: dict[str, list[str]] = {
    "header-patient-names": _needles(_values(HEADER_NAMES) + ["Wetzel, James^Chase"], names=True),
    "header-staff-names": _needles(_values(STAFF_NAMES), names=True),
    "header-ids": _needles(_values(HEADER_IDS)),
    "header-dates": _needles(_values(HEADER_DATES) + ["141530"]),
    "header-places-phones": _needles(
        _values(HEADER_PLACES) + ["Quarrington", "Vauxhall", "Mouffetard", "62704", "555-0143", "7946 0321"]
    ),
    "header-equipment": _needles(_values(HEADER_EQUIPMENT)),
    "allow-listed-fields": _needles(
        ["JOHN SMITH", "0123456", "7654321", "99812345", "20230917", "Bobbington", "WÜSTENHAGEN", "STENHAGEN"]
        + ["Ramachandran", "Priya", "17/09/2023", "Okonkwo", "Gallagher", "Tuesday", "Hargreaves", "Fenwick"],
        names=True,
    ),
    "sequences": _needles(_values(SEQUENCE_PHI))
    + _needles(["Quentin Blackwood", SEQUENCE_PHI["RequestingPhysician"]], names=True),
    "private-tags": _needles(PRIVATE_PHI + ["31415926", "Marchbanks", "Thaddeus", "Ffoulkes", "Ashby"]),
    "odd-encodings": _needles([LATIN1_NAME, UTF8_NAMES, MISENCODED_NAME], names=True),
    "long-values": _needles([LONG_TAIL_NAME], names=True),
    "report-names": _needles(REPORT_NAMES, names=True),
    "report-dates": REPORT_DATES,
    "report-ids": REPORT_IDS,
    "report-contacts": REPORT_CONTACTS + ["555-0198", "555.0177"],
    "report-addresses": REPORT_ADDRESSES,
    "report-ages": REPORT_AGES,
    "file-names": _needles([PHI_FILE_STEM], names=True) + ["s50414267", "p10000032"],
}


# ------------------------------------------------------------------------------------- the export


def _set(ds: Dataset, mapping: dict) -> None:
    for keyword, value in mapping.items():
        setattr(ds, keyword, value)


def _plant_everything(ds: Dataset) -> None:
    ds.SpecificCharacterSet = "ISO_IR 192"  # UTF-8, so "Łukasz" is stored as written
    _set(ds, HEADER_IDS)
    _set(ds, HEADER_DATES)
    _set(ds, HEADER_PLACES)
    _set(ds, HEADER_EQUIPMENT)
    _set(ds, STAFF_NAMES)
    for keyword in ("OtherPatientNames", "PatientBirthName", "PatientMotherBirthName"):
        setattr(ds, keyword, HEADER_NAMES[keyword])
    request = Dataset()
    for keyword in ("RequestedProcedureID", "ScheduledProcedureStepID", "RequestedProcedureDescription",
                    "RequestingPhysician"):
        setattr(request, keyword, SEQUENCE_PHI[keyword])
    ds.RequestAttributesSequence = Sequence([request])
    referenced = Dataset()
    referenced.ReferencedSOPClassUID = "1.2.840.10008.3.1.2.3.1"
    referenced.ReferencedSOPInstanceUID = SEQUENCE_PHI["ReferencedSOPInstanceUID"]
    ds.ReferencedPatientSequence = Sequence([referenced])
    block = ds.private_block(0x0029, "MGLL HOSTILE", create=True)
    block.add_new(0x10, "LO", PRIVATE_PHI[0])
    block.add_new(0x11, "LO", PRIVATE_PHI[1])
    ds.add(DataElement(0x00291120, "UN", PRIVATE_PHI[2].encode()))
    _new_uids(ds)


def _new_uids(ds: Dataset) -> None:
    # Fresh instance UIDs per file, so "original UIDs never appear" is tested on values unique to this export.
    ds.StudyInstanceUID = generate_uid()
    ds.SeriesInstanceUID = generate_uid()
    ds.SOPInstanceUID = generate_uid()
    ds.FrameOfReferenceUID = generate_uid()
    ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID


def _write(ds: Dataset, path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    ds.save_as(path, enforce_file_format=True)
    return path


def _study(root: Path, patient: str, study: str, report: str | bytes | None) -> Path:
    folder = root / "files" / f"p{patient[:2]}" / f"p{patient}" / f"s{study}"
    folder.mkdir(parents=True, exist_ok=True)
    if report is not None:
        target = folder.parent / f"s{study}.txt"
        target.write_bytes(report if isinstance(report, bytes) else report.encode("utf-8"))
    return folder


def write_hostile_export(root: Path) -> dict[str, Path]:
    """The hostile export; returns the planted DICOM files by role (for independent UID checks)."""
    files: dict[str, Path] = {}
    # A: the real DX radiograph with its own PHI ("Wetzel, James^Chase") plus everything planted.
    cat = pydicom.dcmread(CAT_DX)
    _plant_everything(cat)
    _set(cat, ALLOW_LISTED)
    cat.PatientName = PATIENT_NAME
    cat.OtherPatientNames = "Wetzel, James^Chase"
    folder = _study(root, "10000032", "50414267", REPORT_A)
    files["dx"] = _write(cat, folder / "0a1b2c3d-dx.dcm")

    # B: the CR, ISO_IR 100 (latin-1 bytes on disk), allow-listed fields with names not in its header.
    cr = pydicom.dcmread(RG1_CR)
    cr.SpecificCharacterSet = "ISO_IR 100"
    cr.PatientName = LATIN1_NAME
    cr.PatientID = "MRN-0098765"
    _set(cr, ALLOW_LISTED_SECOND)
    _new_uids(cr)
    folder = _study(root, "10000033", "50414268", REPORT_B)
    files["cr"] = _write(cr, folder / "cr.dcm")

    # C: CT, ISO_IR 192 with Cyrillic/Greek names, a mis-encoded name, a long tail past every limit.
    ct = pydicom.dcmread(CT_SMALL)
    ct.SpecificCharacterSet = "ISO_IR 192"
    ct.PatientName = UTF8_NAMES
    ct.StudyDescription = "CHEST PA " * 4000 + LONG_TAIL_NAME
    ct.SeriesDescription = "AP " + "x" * 70000 + " " + LONG_TAIL_NAME
    ct.PatientComments = (LONG_TAIL_NAME + " ") * 5000
    ct.OtherPatientIDs = ["9" * 300, "X99887766"]
    ct.ManufacturerModelName = "M" * 5000
    _plant_everything(ct)
    ct.add(DataElement(0x00101005, "PN", MISENCODED_NAME.encode("latin-1")))  # PatientBirthName, raw bytes
    folder = _study(root, "10000034", "50414269", REPORT_C)
    files["ct-encodings"] = _write(ct, folder / "ct.dcm")

    # Rejects, each with PHI where a careless message would echo it.
    ct_bad = pydicom.dcmread(CT_SMALL)
    _plant_everything(ct_bad)
    ct_bad.PatientName = PATIENT_NAME
    ct_bad.PhotometricInterpretation = PHOTOMETRIC_PHI
    folder = _study(root, "10000035", "50414270", REPORT_A)
    files["ct-photometric"] = _write(ct_bad, folder / f"{PHI_FILE_STEM}-2.dcm")

    no_pixels = pydicom.dcmread(CT_SMALL)
    _plant_everything(no_pixels)
    no_pixels.PatientName = PATIENT_NAME
    del no_pixels.PixelData
    folder = _study(root, "10000036", "50414271", REPORT_A)
    files["no-pixels"] = _write(no_pixels, folder / f"{PHI_FILE_STEM}.dcm")

    folder = _study(root, "10000037", "50414272", REPORT_A)
    (folder / f"{PHI_FILE_STEM}.dcm").write_bytes(files["dx"].read_bytes()[:4000])  # truncated

    folder = _study(root, "10000038", "50414273", REPORT_B.encode("latin-1", "replace"))  # not UTF-8
    files["latin1-report"] = _write(_with_new_uids(CT_SMALL, PATIENT_NAME), folder / f"{PHI_FILE_STEM}.dcm")

    folder = _study(root, "10000039", "50414274", None)  # no report at all
    files["no-report"] = _write(_with_new_uids(CT_SMALL, PATIENT_NAME), folder / f"{PHI_FILE_STEM}.dcm")

    folder = _study(root, "10000040", "50414275", REPORT_PLAIN)  # a clean control that must become a row
    files["control"] = _write(_with_new_uids(CT_SMALL, "Control^Casey"), folder / "control.dcm")
    return files


def _with_new_uids(path: Path, name: str) -> Dataset:
    ds = pydicom.dcmread(path)
    ds.PatientName = name
    _new_uids(ds)
    return ds


# ----------------------------------------------------------------------------------------- fixtures


@pytest.fixture(scope="module")
def hostile(tmp_path_factory):
    root = tmp_path_factory.mktemp("hostile-export")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the hostile values are meant to break the standard's limits
        files = write_hostile_export(root)
    salt = tmp_path_factory.mktemp("secret") / "salt"
    out = tmp_path_factory.mktemp("built") / "ds"
    summary = build_dataset(root, out, "mimic-cxr", salt_file=salt, progress=False)
    write_card(out)
    return {"root": root, "files": files, "salt": salt, "out": out, "summary": summary}


def _png_chunks(data: bytes) -> list[tuple[bytes, bytes]]:
    assert data[:8] == b"\x89PNG\r\n\x1a\n", "stored image is not a PNG"
    chunks, pos = [], 8
    while pos < len(data):
        (length,) = struct.unpack(">I", data[pos : pos + 4])
        kind = data[pos + 4 : pos + 8]
        chunks.append((kind, data[pos + 8 : pos + 8 + length]))
        pos += 12 + length
    return chunks


def _jpeg_markers(data: bytes) -> list[int]:
    """Markers before the scan data: APPn (EXIF, XMP…) and COM would carry metadata."""
    assert data[:2] == b"\xff\xd8", "stored image is not a JPEG"
    markers, pos = [], 2
    while pos < len(data) and data[pos] == 0xFF:
        marker = data[pos + 1]
        markers.append(marker)
        if marker == 0xDA:  # start of scan: entropy-coded data follows
            break
        (length,) = struct.unpack(">H", data[pos + 2 : pos + 4])
        pos += 2 + length
    return markers


def _haystack(out: Path) -> str:
    """Every string the dataset folder holds, decoded: every column of every Parquet file (image paths,
    not pixels), file and field metadata, JSON/markdown files, PNG text chunks of charts, file names."""
    chunks: list[str] = []
    for path in sorted(out.rglob("*")):
        chunks.append(path.relative_to(out).as_posix())
        if not path.is_file():
            continue
        if path.suffix == ".parquet":
            meta = pq.read_metadata(path)
            chunks.append(str(meta.created_by))
            chunks.extend(_decoded(meta.metadata, skip=b"ARROW:schema"))  # that one is the schema, read below
            table = pq.read_table(path)
            chunks.extend(_decoded(table.schema.metadata))
            for field in table.schema:
                chunks.append(field.name)
                chunks.extend(_decoded(field.metadata))
            for column in table.column_names:
                values = table.column(column).to_pylist()
                if column == "image":
                    for value in values:
                        chunks.append(value["path"])
                        chunks.extend(_image_metadata_text(value["bytes"]))
                else:
                    chunks.append(json.dumps(values, default=str, ensure_ascii=False))
        elif path.suffix == ".png":
            chunks.extend(_image_metadata_text(path.read_bytes()))
        else:
            chunks.append(path.read_bytes().decode("utf-8", "replace"))
    return "\n".join(chunks)


def _decoded(metadata: dict[bytes, bytes] | None, skip: bytes = b"") -> list[str]:
    return [f"{k.decode('utf-8', 'replace')}={v.decode('utf-8', 'replace')}" for k, v in (metadata or {}).items()
            if k != skip]


def _image_metadata_text(data: bytes) -> list[str]:
    if data[:2] == b"\xff\xd8":
        return []  # JPEG: checked structurally (no APPn/COM) in its own test
    return [
        body.decode("latin-1")
        for kind, body in _png_chunks(data)
        if kind not in (b"IHDR", b"IDAT", b"IEND", b"PLTE")
    ]


def _found(haystack: str, needle: str) -> bool:
    return re.search(rf"(?<!\w){re.escape(needle)}(?!\w)", haystack, re.IGNORECASE) is not None


@pytest.fixture(scope="module")
def haystack(hostile) -> str:
    return _haystack(hostile["out"])


# -------------------------------------------------------------------------------------------- tests


def test_the_hostile_build_has_rows_and_rejects(hostile):
    # The scan below means something only if the PHI-laden images became rows with their reports scrubbed,
    # not rejects (a reject keeps nothing but a reason).
    summary = hostile["summary"]
    assert summary.rows + summary.rejects == summary.inputs == 9
    root = hostile["root"]
    kinds = {e["source_path"]: e["kind"] for e in pq.read_table(summary.linkage).to_pylist()}
    for role in ("dx", "cr", "ct-encodings", "control"):
        assert kinds[hostile["files"][role].relative_to(root).as_posix()] == "row", role
    rows = [r for p in (hostile["out"] / "data").glob("*.parquet") for r in pq.read_table(p).to_pylist()]
    dx = next(r for r in rows if "effusion" in (r["report_text"] or "").lower() and "[DATE]" in r["report_text"])
    for placeholder in ("[NAME]", "[DATE]", "[ID]", "[PHONE]", "[ADDRESS]", "[EMAIL]", "[AGE]", "[URL]"):
        assert placeholder in dx["report_text"], placeholder
    assert dx["modality"] == "DX" and dx["body_part"] == "CHEST" and dx["text_study"] == "CHEST PA - [ID]"


def test_control_characters_are_stripped_from_reports_and_counted(hostile):
    rows = [r for p in (hostile["out"] / "data").glob("*.parquet") for r in pq.read_table(p).to_pylist()]
    cr = next(r for r in rows if "Follow-up advised" in (r["report_text"] or ""))  # REPORT_B's row
    assert not re.search(r"[\x00-\x08\x0b-\x1f\x7f\u202e]", cr["report_text"]), repr(cr["report_text"])
    assert "Critical" in cr["report_text"] and "\n" in cr["report_text"]  # text and line breaks kept
    counts = hostile["summary"].counts
    assert counts["reports_with_control_characters"] == 1  # REPORT_B's other copy is a not-UTF-8 reject
    assert counts["control_characters_stripped"] == 1 + 7 + 4 + 4 + 1


@pytest.mark.parametrize("category", sorted(PLANTED))
def test_no_planted_phi_in_the_dataset_folder(hostile, haystack, category):
    needles = PLANTED[category]
    assert needles
    leaked = [n for n in needles if _found(haystack, n)]
    assert leaked == [], f"{category} leaked into {hostile['out']}: {leaked}"


def test_an_undefined_photometric_interpretation_is_refused_not_echoed(hostile, haystack):
    summary, root = hostile["summary"], hostile["root"]
    kinds = {e["source_path"]: e["kind"] for e in pq.read_table(summary.linkage).to_pylist()}
    assert kinds[hostile["files"]["ct-photometric"].relative_to(root).as_posix()] == "reject"
    assert not _found(haystack, PHOTOMETRIC_PHI)


def test_original_uids_never_appear(hostile, haystack):
    uids = set()
    for path in hostile["files"].values():
        ds = pydicom.dcmread(path, stop_before_pixels=True, force=True)
        for element in ds.iterall():
            if (element.VR == "UI" and "Instance" in element.keyword) or element.keyword == "FrameOfReferenceUID":
                uids.add(str(element.value))
        uids.add(str(ds.file_meta.MediaStorageSOPInstanceUID))
    assert len(uids) > 10
    assert [u for u in uids if u in haystack] == []


def test_stored_images_carry_no_metadata_chunks(hostile):
    for shard in (hostile["out"] / "data").glob("*.parquet"):
        for image in pq.read_table(shard, columns=["image"]).column("image").to_pylist():
            kinds = {kind for kind, _ in _png_chunks(image["bytes"])}
            assert kinds <= {b"IHDR", b"IDAT", b"IEND", b"PLTE"}, kinds
            assert re.fullmatch(r"img-[0-9a-f]{20}\.png", image["path"])


def test_jpeg_output_carries_no_exif_or_comments(hostile):
    settings = load_pipeline("mimic-cxr").image
    jpeg_settings = dataclasses.replace(settings, format="jpeg")
    rendered = imaging.render_file(hostile["files"]["dx"], jpeg_settings)
    markers = _jpeg_markers(rendered.data)
    assert markers[-1] == 0xDA
    assert [m for m in markers if 0xE0 <= m <= 0xEF or m == 0xFE] in ([], [0xE0])  # JFIF header only
    app0 = rendered.data.find(b"\xff\xe0")
    if app0 != -1:
        assert rendered.data[app0 + 4 : app0 + 9] == b"JFIF\x00"


def test_reject_errors_carry_no_paths_or_header_values(hostile):
    rejects = pq.read_table(hostile["out"] / "rejects.parquet").to_pylist()
    reasons = {r["reason"] for r in rejects}
    assert {"truncated-file", "report-missing", "report-not-utf8"} <= reasons | {"decode-failed"}, reasons
    assert len(rejects) >= 4
    everything = [n for values in PLANTED.values() for n in values]
    for reject in rejects:
        error = reject["error"]
        assert error and "\n" not in error
        assert "/" not in error and "\\" not in error and ".dcm" not in error.lower(), error
        assert str(hostile["root"]) not in error
        assert [n for n in everything if _found(error, n)] == [], error
        assert re.fullmatch(r"src-[0-9a-f]{20}", reject["source_key"])


def test_file_names_inside_the_dataset_carry_no_ids(hostile):
    out = hostile["out"]
    allowed = re.compile(
        r"data|data/(?:train|validation|test)-\d{5}\.parquet|rejects\.parquet|manifest\.json|\.mgll-build\.lock"
        r"|README\.md|charts|charts/[a-z_]+\.png"
    )
    names = [p.relative_to(out).as_posix() for p in out.rglob("*")]
    assert [n for n in names if not allowed.fullmatch(n)] == []


def test_salt_and_linkage_stay_outside_the_dataset(hostile, tmp_path):
    out, salt_path = hostile["out"], hostile["salt"]
    summary = hostile["summary"]
    assert out not in salt_path.parents and out not in summary.linkage.parents
    assert summary.linkage.exists() and summary.linkage.stat().st_mode & 0o077 == 0
    salt = salt_path.read_bytes()
    for path in out.rglob("*"):
        if path.is_file():
            data = path.read_bytes()
            assert salt not in data and salt.hex().encode() not in data, path
    with pytest.raises(ValueError, match="outside the dataset"):
        build_dataset(hostile["root"], tmp_path / "ds", "mimic-cxr", linkage=tmp_path / "ds" / "link.parquet",
                      salt_file=salt_path, progress=False)
    assert not (tmp_path / "ds").exists()


def test_linkage_holds_the_originals_the_dataset_does_not(hostile, haystack):
    # The private table is where the source paths and original ids go; none of them is in the dataset.
    linkage = pq.read_table(hostile["summary"].linkage).to_pylist()
    assert len(linkage) == hostile["summary"].inputs
    assert {e["original_patient_id"] for e in linkage if e["kind"] == "row"} >= {"p10000032"}
    for entry in linkage:
        assert entry["source_path"] not in haystack
        for key in ("original_patient_id", "original_study_id"):
            if entry[key]:
                assert not _found(haystack, entry[key]), entry[key]
