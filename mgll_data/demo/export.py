"""The demo export: a MIMIC-CXR-shaped folder of DICOM studies and reports, plus its answer key.

Layout (what `pipelines/mimic-cxr.yaml` reads)::

    OUT/files/p1X/p1XXXXXXX/s5XXXXXXX/<dicom_id>.dcm
    OUT/files/p1X/p1XXXXXXX/s5XXXXXXX.txt          (the study's report)
    OUT/ground_truth.csv   one row per study expected to become rows: findings as the report writes them
    OUT/demo_images.csv    one row per .dcm: how it was encoded, and `expect` (row, or the reject reason)
    OUT/planted_phi.csv    every fake identifying string planted, for privacy checks on a built dataset
    OUT/README.txt

Every study is generated from its own random stream (seed, study index), so the first 24 studies of a
2,000-study export are the 24-study export, and studies can be written by several processes at once.
"""

from __future__ import annotations

import csv
import shutil
import time
from collections import Counter
from concurrent.futures import ProcessPoolExecutor
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import pydicom
from pydicom import uid

from mgll_data.demo import broken as broken_files
from mgll_data.demo.dicom_files import ImageContext, PixelVariant, build_dicom, choose_variant, save
from mgll_data.demo.fake_phi import FakeStudyPeople, fake_people
from mgll_data.demo.findings import CHEXPERT, StudyPlan, plan_study
from mgll_data.demo.packaged import PACKAGED_STUDIES, PackagedStudy, locate, packaged_report
from mgll_data.demo.report_text import write_report
from mgll_data.demo.synthetic import draw_frontal, draw_lateral
from mgll_data.progress import progress_bar

GROUND_TRUTH = "ground_truth.csv"
IMAGES_INDEX = "demo_images.csv"
PHI_INDEX = "planted_phi.csv"
README = "README.txt"
_OWN_FILES = (GROUND_TRUTH, IMAGES_INDEX, PHI_INDEX, README)
IMAGE_COLUMNS = ("image_path", "subject", "study", "source", "view", "sop_class", "transfer_syntax", "photometric",
                 "bits_stored", "signed", "rescale", "window", "padding", "rows", "columns", "expect")


class DemoError(ValueError):
    """An output folder the demo cannot write into; the message is one line for the user."""


@dataclass
class DemoSummary:
    out: Path
    studies: int = 0
    synthetic_studies: int = 0
    images: int = 0
    reports: int = 0
    packaged: list[str] = field(default_factory=list)
    packaged_missing: list[str] = field(default_factory=list)
    broken: dict[str, str] = field(default_factory=dict)  # image or report path -> expected reject reason
    expected_rows: int = 0
    transfer_syntaxes: dict[str, int] = field(default_factory=dict)
    photometric: dict[str, int] = field(default_factory=dict)
    positives: dict[str, int] = field(default_factory=dict)  # studies with each finding positive
    bytes: int = 0
    seconds: float = 0.0

    def to_dict(self) -> dict:
        data = asdict(self)
        data["out"] = str(self.out)
        return data


@dataclass(frozen=True)
class _StudyIds:
    index: int
    subject: str  # "p10000032"
    study: str  # "s50414267"

    def folder(self, root: Path) -> Path:
        return root / "files" / self.subject[:3] / self.subject / self.study

    def report(self, root: Path) -> Path:
        return root / "files" / self.subject[:3] / self.subject / f"{self.study}.txt"


def _allocate_ids(seed: int, count: int) -> list[_StudyIds]:
    """MIMIC-style ids: 8-digit subjects p1XXXXXXX, studies s5XXXXXXX; about 1 in 5 patients has 2 studies."""
    rng = np.random.default_rng([seed, 1_000_003])
    subjects: set[int] = set()
    studies: set[int] = set()
    ids: list[_StudyIds] = []
    subject = 0
    for index in range(count):
        if not ids or rng.random() >= 0.2:
            subject = int(rng.integers(10_000_000, 20_000_000))
            while subject in subjects:
                subject = int(rng.integers(10_000_000, 20_000_000))
            subjects.add(subject)
        study = int(rng.integers(50_000_000, 60_000_000))
        while study in studies:
            study = int(rng.integers(50_000_000, 60_000_000))
        studies.add(study)
        ids.append(_StudyIds(index, f"p{subject}", f"s{study}"))
    return ids


def _dicom_id(rng: np.random.Generator) -> str:
    """MIMIC's image names: five dash-separated groups of 8 hex digits."""
    return "-".join(f"{int(rng.integers(0, 2**32)):08x}" for _ in range(5))


def _descriptions(rng: np.random.Generator, people: FakeStudyPeople, views: tuple[str, ...]) -> tuple[str, list[str]]:
    portable = views == ("AP",)
    study = (
        "CHEST (PORTABLE AP)"
        if portable
        else str(rng.choice(["CHEST (PA AND LAT)", "XR CHEST 2 VIEWS", "CHEST PA/LAT"]))
    )
    roll = rng.random()
    if roll < 0.12:
        study = f"{study} per Dr. {people.referring[1]}"
    elif roll < 0.18:
        study = f"{study} - {people.patient_last.upper()}, {people.patient_first.upper()}"
    series = []
    for view in views:
        text = {"PA": "PA", "AP": "AP PORTABLE", "LATERAL": "LATERAL"}[view]
        if rng.random() < 0.1:
            text = f"{text} - tech {people.dictating[0]} {people.dictating[1]}"
        series.append(text)
    return study, series


def _image_shape(rng: np.random.Generator, view: str) -> tuple[int, int]:
    height = int(rng.integers(160, 225)) * 2
    ratio = rng.uniform(0.9, 1.05) if view == "LATERAL" else rng.uniform(0.82, 1.0)
    return height, int(height * ratio) // 2 * 2


def _image_row(relpath: str, ids: _StudyIds, source: str, view: str, variant: PixelVariant | None,
               written_ts: str, shape: tuple[int, int], expect: str) -> dict:
    if variant is None:
        encoding = dict(sop_class="", photometric="", bits_stored="", signed="", rescale="", window="", padding="")
    else:
        rescale = "" if variant.rescale is None else "{:g}/{:g}".format(*variant.rescale)
        encoding = dict(sop_class=variant.sop, photometric=variant.photometric, bits_stored=variant.bits_stored,
                        signed=int(variant.signed), rescale=rescale, window=variant.window,
                        padding=int(variant.padding))
    return dict(image_path=relpath, subject=ids.subject, study=ids.study, source=source, view=view,
                transfer_syntax=uid.UID(written_ts).name if written_ts else "", rows=shape[0], columns=shape[1],
                expect=expect, **encoding)


def _write_synthetic_study(task: tuple[Path, int, _StudyIds, str | None]) -> dict:
    """Write one study (images + report); returns its index rows. Runs in worker processes too."""
    out, seed, ids, broken_kind = task
    rng = np.random.default_rng([seed, ids.index])
    plan: StudyPlan = plan_study(rng)
    people = fake_people(rng)
    if broken_kind is not None:
        plan = StudyPlan(findings={}, views=("PA",), normal_template=True)
    folder = ids.folder(out)
    folder.mkdir(parents=True, exist_ok=True)
    study_description, series_descriptions = _descriptions(rng, people, plan.views)
    images = []
    for number, (view, series_description) in enumerate(zip(plan.views, series_descriptions), start=1):
        shape = _image_shape(rng, view)
        density = (
            draw_lateral(rng, plan.drawn(), shape)
            if view == "LATERAL"
            else draw_frontal(rng, plan.drawn(), shape, view)
        )
        variant = choose_variant(rng)
        if broken_kind in ("truncated-file", "no-pixel-data"):
            variant = PixelVariant(
                "DX-presentation", str(uid.ExplicitVRLittleEndian), "MONOCHROME2", 12, False, None, "none", False
            )
        ctx = ImageContext(seed, ids.subject, ids.study, view, number, 1, study_description, series_description)
        ds, pixels = build_dicom(density, variant, people, ctx, rng)
        path = folder / f"{_dicom_id(rng)}.dcm"
        expect = "row"
        if broken_kind == "no-pixel-data":
            del ds.PixelData
        if broken_kind == "empty-file":
            broken_files.write_empty(path)
            written, variant = "", None
        elif broken_kind == "not-an-image":
            broken_files.write_not_an_image(path)
            written, variant = "", None
        else:
            written = save(ds, pixels, variant.transfer_syntax, path)
        if broken_kind == "truncated-file":
            broken_files.truncate(path)
        if broken_kind is not None:
            expect = broken_files.BROKEN_KINDS[broken_kind]
        relpath = path.relative_to(out).as_posix()
        images.append(_image_row(relpath, ids, "synthetic", view, variant, written, shape, expect))
    report_path = ids.report(out)
    if broken_kind == "report-not-utf8":
        broken_files.write_not_utf8_report(report_path)
    elif broken_kind != "report-missing":
        report_path.write_text(write_report(rng, plan, people), encoding="utf-8")
    phi = [dict(study=ids.study, value=value) for value in people.identifying_strings()]
    labels = plan.labels() if broken_kind is None else None
    return dict(ids=ids, images=images, labels=labels, phi=phi, report=broken_kind != "report-missing")


def _write_packaged_study(out: Path, seed: int, ids: _StudyIds, study: PackagedStudy) -> dict | None:
    source = locate(study.key)
    if source is None:
        return None
    rng = np.random.default_rng([seed, ids.index])
    people = fake_people(rng)
    folder = ids.folder(out)
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{_dicom_id(rng)}.dcm"
    shutil.copyfile(source, path)
    ids.report(out).write_text(packaged_report(study, people), encoding="utf-8")
    header = pydicom.dcmread(path, stop_before_pixels=True)
    row = _image_row(path.relative_to(out).as_posix(), ids, study.key, study.view, None,
                     str(header.file_meta.TransferSyntaxUID), (int(header.Rows), int(header.Columns)), "row")
    row.update(sop_class=uid.UID(header.SOPClassUID).name, photometric=str(header.PhotometricInterpretation),
               bits_stored=int(header.BitsStored))
    labels = dict(study.labels)
    phi = [dict(study=ids.study, value=v) for v in (people.dictating[1], people.accession, people.phone)]
    return dict(ids=ids, images=[row], labels=labels, phi=phi, report=True)


def _prepare_out(out: Path, overwrite: bool) -> None:
    if out.exists() and not out.is_dir():
        raise DemoError(f"{out} exists and is not a folder")
    if out.is_dir() and any(out.iterdir()):
        looks_like_demo = (out / GROUND_TRUTH).is_file() and (out / "files").is_dir()
        if not overwrite:
            raise DemoError(f"{out} is not empty; choose a new folder or pass --overwrite to replace a demo export")
        if not looks_like_demo:
            raise DemoError(f"{out} is not empty and is not a demo export; refusing to overwrite it")
        shutil.rmtree(out / "files")
        for name in _OWN_FILES:
            (out / name).unlink(missing_ok=True)
    out.mkdir(parents=True, exist_ok=True)


def write_demo_export(out: Path, studies: int = 24, seed: int = 0, *, broken: bool = False, packaged: bool = True,
                      workers: int = 1, overwrite: bool = False, progress: bool = True) -> DemoSummary:
    """Write the demo export into `out` (empty or absent) and return what was written."""
    if studies < 1:
        raise DemoError(f"--studies must be at least 1, got {studies}")
    if workers < 1:
        raise DemoError(f"--workers must be at least 1, got {workers}")
    out = Path(out)
    _prepare_out(out, overwrite)
    started = time.perf_counter()
    broken_kinds = list(broken_files.BROKEN_KINDS) if broken else []
    extra_packaged = len(PACKAGED_STUDIES) if packaged else 0
    ids = _allocate_ids(seed, studies + extra_packaged + len(broken_kinds))
    tasks = [(out, seed, ids[i], None) for i in range(studies)]
    tasks += [(out, seed, ids[studies + extra_packaged + j], kind) for j, kind in enumerate(broken_kinds)]
    bar = progress_bar(len(tasks) + extra_packaged, desc="demo export", unit="study", enabled=progress)
    results: list[dict] = []
    if workers == 1:
        for task in tasks:
            results.append(_write_synthetic_study(task))
            bar.update()
    else:
        with ProcessPoolExecutor(max_workers=workers) as pool:
            for result in pool.map(_write_synthetic_study, tasks, chunksize=4):
                results.append(result)
                bar.update()
    summary = DemoSummary(out=out, synthetic_studies=studies)
    for j, study in enumerate(PACKAGED_STUDIES[:extra_packaged]):
        result = _write_packaged_study(out, seed, ids[studies + j], study)
        if result is None:
            summary.packaged_missing.append(study.key)
        else:
            summary.packaged.append(study.key)
            results.append(result)
        bar.update()
    bar.close()
    results.sort(key=lambda r: r["ids"].index)
    _write_indexes(out, results)
    _summarise(summary, results, out, started)
    return summary


def _write_indexes(out: Path, results: list[dict]) -> None:
    with open(out / IMAGES_INDEX, "w", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(handle, fieldnames=IMAGE_COLUMNS)
        writer.writeheader()
        for result in results:
            writer.writerows(result["images"])
    with open(out / GROUND_TRUTH, "w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(["subject", "study", "source", "report_path", *CHEXPERT])
        for result in results:
            if result["labels"] is None:
                continue
            ids = result["ids"]
            source = result["images"][0]["source"]
            writer.writerow([ids.subject, ids.study, source, ids.report(out).relative_to(out).as_posix(),
                             *(result["labels"].get(name, "") for name in CHEXPERT)])
    with open(out / PHI_INDEX, "w", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(handle, fieldnames=["study", "value"])
        writer.writeheader()
        for result in results:
            writer.writerows(result["phi"])
    (out / README).write_text(_README, encoding="utf-8")


def _summarise(summary: DemoSummary, results: list[dict], out: Path, started: float) -> None:
    syntaxes: Counter[str] = Counter()
    photometric: Counter[str] = Counter()
    positives: Counter[str] = Counter()
    for result in results:
        summary.studies += 1
        summary.reports += int(result["report"])
        for image in result["images"]:
            summary.images += 1
            if image["expect"] == "row":
                summary.expected_rows += 1
            else:
                summary.broken[image["image_path"]] = image["expect"]
            if image["transfer_syntax"]:
                syntaxes[image["transfer_syntax"]] += 1
            if image["photometric"]:
                photometric[image["photometric"]] += 1
        for name, status in (result["labels"] or {}).items():
            if status == 1:
                positives[name] += 1
    summary.transfer_syntaxes = dict(sorted(syntaxes.items()))
    summary.photometric = dict(sorted(photometric.items()))
    summary.positives = {name: positives[name] for name in CHEXPERT if positives[name]}
    summary.bytes = sum(p.stat().st_size for p in (out / "files").rglob("*") if p.is_file())
    summary.seconds = round(time.perf_counter() - started, 2)


_README = """mgll demo export (synthetic, no real patient data)

files/        MIMIC-CXR layout: files/pXX/p<subject>/s<study>/<dicom_id>.dcm, report files/pXX/p<subject>/s<study>.txt
ground_truth.csv  per study expected to become rows: CheXpert findings as the report writes them
                  (1 positive, 0 negative, -1 uncertain, empty = not mentioned); `source` says synthetic or
                  which package a real file was copied from (their reports are demo text, not clinical reads)
demo_images.csv   per .dcm file: encoding (transfer syntax, photometric, bits, rescale, window, padding) and
                  `expect`: "row", or the reject reason a planted broken input should get
planted_phi.csv   every fake identifying string planted in headers and reports; none may reach a built dataset

All names, ids, dates, phone numbers and addresses are invented.
Build it:  mgll build <this folder> <dataset> --pipeline mimic-cxr
"""
