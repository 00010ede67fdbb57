"""`mgll card`: the card's tables hold the counts of the data it describes; the charts are real PNGs; the
card sits at the dataset's root with Hub front matter, and never replaces a README.md a person wrote."""

from __future__ import annotations

import re
from collections import Counter
from pathlib import Path

import pytest
import yaml
from click.testing import CliRunner
from PIL import Image

from mgll_data import dataset, writer
from mgll_data.card import CardError, write_card
from mgll_data.card.charts import long_sides
from mgll_data.card.statistics import collect
from mgll_data.commands.card import card


def table_rows(markdown: str, header_start: str) -> list[list[str]]:
    """The body rows of the first markdown table whose header begins with `header_start` (thousands
    separators removed, so counts parse with int())."""
    lines = markdown.splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith(f"| {header_start} |"))
    rows = []
    for line in lines[start + 2 :]:
        if not line.startswith("|"):
            break
        rows.append([cell.strip().replace(",", "") for cell in line.strip("|").split(" | ")])
    return rows


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory, datasets) -> tuple[Path, list[dict], str]:
    rows = datasets.rows(30, seed=3)
    path = datasets.write(tmp_path_factory.mktemp("card") / "ds", rows=rows, rejects=datasets.rejects(4), shards=2,
                         row_group_size=7)
    readme = write_card(path)
    return path, rows, readme.read_text(encoding="utf-8")


def front_matter(markdown: str) -> dict:
    assert markdown.startswith("---\n")
    return yaml.safe_load(markdown.split("---\n")[1])


def test_card_is_written_at_the_dataset_root_with_hub_front_matter(built: tuple[Path, list[dict], str]) -> None:
    path, _, markdown = built
    assert (path / "README.md").is_file() and dataset.is_card(path / "README.md")
    meta = front_matter(markdown)
    assert meta["license"] == "other", "the default when the build named no licence"
    files = {entry["split"]: entry["path"] for entry in meta["configs"][0]["data_files"]}
    assert files == {"train": "data/train-*.parquet", "validation": "data/validation-*.parquet",
                     "test": "data/test-*.parquet"}
    for split, pattern in files.items():
        matched = sorted(path.glob(pattern))
        assert matched and matched == dataset.shard_paths(path, {"validation": "val"}.get(split, split))
    for heading in ("## How it was built", "## Splits", "## Labels", "## Text granularities", "## Images",
                    "## Rejected inputs", "## Schema", "## Privacy"):
        assert heading in markdown


def test_label_prevalence_table_matches_the_rows(built: tuple[Path, list[dict], str], datasets) -> None:
    _, rows, markdown = built
    table = {(r[0], r[1]): r[2:] for r in table_rows(markdown, "finding")}
    for finding in datasets.VOCABULARY:
        for split in ("train", "val", "test", "all"):
            in_split = [r for r in rows if split == "all" or r["split"] == split]
            statuses = Counter(x["status"] for r in in_split for x in r["labels"] if x["name"] == finding)
            positive, negative, uncertain, unmentioned, _ = table[(finding, split)]
            assert (int(positive), int(negative), int(uncertain)) == (statuses[1], statuses[0], statuses[-1])
            assert int(unmentioned) == len(in_split) - sum(statuses.values())


def test_splits_table_counts_images_and_patients(built: tuple[Path, list[dict], str]) -> None:
    _, rows, markdown = built
    table = {r[0]: r[1:] for r in table_rows(markdown, "split")}
    for split in ("train", "val", "test"):
        in_split = [r for r in rows if r["split"] == split]
        assert int(table[split][0]) == len(in_split)
        assert int(table[split][1]) == len({r["patient_id"] for r in in_split})
    assert int(table["all"][0]) == len(rows)


def test_granularity_coverage_and_examples(built: tuple[Path, list[dict], str]) -> None:
    _, rows, markdown = built
    coverage = {r[0]: r for r in table_rows(markdown, "granularity | column")}
    non_null = sum(r["text_series"] is not None for r in rows)
    assert coverage["series"][-1].startswith(f"{non_null} (")
    train_with_explanation = [r for r in rows if r["split"] == "train" and r["text_explanation"]]
    examples = {r[0]: r[1] for r in table_rows(markdown, "granularity | example")}
    assert examples["explanation"] == train_with_explanation[0]["text_explanation"]


def test_rejects_table_counts_reasons(built: tuple[Path, list[dict], str], datasets) -> None:
    _, _, markdown = built
    expected = Counter((r["stage"], r["reason"]) for r in datasets.rejects(4))
    table = {(r[0], r[1]): int(r[2]) for r in table_rows(markdown, "stage")}
    assert table == dict(expected)


def test_image_size_table(built: tuple[Path, list[dict], str]) -> None:
    _, rows, markdown = built
    sizes = {r[0]: r[1:] for r in table_rows(markdown, "pixels")}
    heights = [r["height"] for r in rows]
    assert (int(sizes["height"][0]), int(sizes["height"][2])) == (min(heights), max(heights))


def test_charts_are_valid_pngs(built: tuple[Path, list[dict], str]) -> None:
    path, _, markdown = built
    for name in ("label_prevalence.png", "granularity_coverage.png", "image_sizes.png"):
        assert f"](charts/{name})" in markdown
        with Image.open(path / "charts" / name) as image:
            image.verify()
        with Image.open(path / "charts" / name) as image:
            assert image.format == "PNG"
            assert image.width >= 400 and image.height >= 200
            assert sum(1 for n in image.convert("L").histogram() if n) > 10  # more than a blank canvas


def test_card_without_rejects_and_a_custom_out(tmp_path: Path, datasets) -> None:
    path = datasets.write(tmp_path / "ds", rows=6, rejects=0)
    readme = write_card(path, tmp_path / "elsewhere")
    assert readme == tmp_path / "elsewhere" / "README.md"
    assert (tmp_path / "elsewhere" / "charts" / "label_prevalence.png").is_file()
    assert "No input was rejected." in readme.read_text()
    assert not (path / "README.md").exists() and not (path / "charts").exists()


def test_card_warns_about_a_linkage_table_inside_the_dataset(tmp_path: Path, datasets) -> None:
    path = datasets.write(tmp_path / "ds", rows=6)
    (path / "ds.linkage.parquet").write_bytes(b"x")
    assert "Remove them before sharing" in write_card(path).read_text()


def test_cli_writes_the_card_and_names_the_charts(tmp_path: Path, datasets) -> None:
    path = datasets.write(tmp_path / "ds", rows=6)
    result = CliRunner().invoke(card, [str(path)])
    assert result.exit_code == 0, result.output
    assert "README.md" in result.output and "label_prevalence.png" in result.output
    assert (path / "README.md").is_file()


def test_cli_not_a_dataset_is_one_line(tmp_path: Path) -> None:
    result = CliRunner().invoke(card, [str(tmp_path / "nope")])
    assert result.exit_code == 1
    assert re.fullmatch(r"Error: .*does not exist\n", result.output)


def test_cli_unreadable_shard_is_one_line(tmp_path: Path, datasets) -> None:
    path = datasets.write(tmp_path / "ds", rows=6)
    dataset.shard_paths(path)[0].write_bytes(b"PAR1 not parquet")
    result = CliRunner().invoke(card, [str(path)])
    assert result.exit_code == 1
    assert result.output.startswith("Error: cannot read") and "mgll validate" in result.output
    assert result.output.count("\n") == 1


def test_cli_help_has_an_example() -> None:
    result = CliRunner().invoke(card, ["--help"])
    assert result.exit_code == 0 and "Example:" in result.output and "mgll card" in result.output


def test_a_readme_a_person_wrote_is_never_replaced(tmp_path: Path, datasets) -> None:
    path = datasets.write(tmp_path / "ds", rows=6)
    (path / "README.md").write_text("# Our site's notes\n")
    with pytest.raises(CardError, match="not written by mgll card"):
        write_card(path)
    assert (path / "README.md").read_text() == "# Our site's notes\n"
    result = CliRunner().invoke(card, [str(path)])
    assert result.exit_code == 1 and result.output.count("\n") == 1 and "--out" in result.output
    assert write_card(path, tmp_path / "card").is_file(), "--out still works"


def test_a_card_is_rewritten_in_place_and_carries_the_builds_licence(tmp_path: Path, datasets) -> None:
    path = datasets.write(tmp_path / "ds", rows=6)
    manifest = dataset.read_manifest(path)
    manifest["license"] = "cc-by-nc-sa-4.0"
    writer.write_manifest(path, manifest)
    write_card(path)
    assert front_matter(write_card(path).read_text())["license"] == "cc-by-nc-sa-4.0"


def test_a_card_is_refused_while_a_build_holds_the_dataset(tmp_path: Path, datasets) -> None:
    from mgll_data.output_folder import exclusive_lock

    path = datasets.write(tmp_path / "ds", rows=6)
    with exclusive_lock(path / dataset.LOCK_FILE, "test"), pytest.raises(CardError, match="another mgll build"):
        write_card(path)
    assert not (path / "README.md").exists()


def test_image_sizes_chart_draws_originals_on_a_log_axis_and_one_stored_size_as_a_line(
    tmp_path: Path, datasets
) -> None:
    from mgll_data.card.charts import _image_sizes

    rows = datasets.rows(12)
    for i, row in enumerate(rows):  # originals from 300 px to 3,000 px, one stored size as a pipeline gives
        row["original_height"], row["original_width"] = 300 + 250 * i, 200 + 150 * i
    stats = collect(datasets.write(tmp_path / "ds", rows=rows))
    assert sorted(long_sides(stats, "original_height", "original_width")) == [300 + 250 * i for i in range(12)]
    fig = _image_sizes(stats)
    (ax,) = fig.axes
    assert ax.get_xscale() == "log" and ax.get_yscale() == "log"
    low, high = ax.get_xlim()
    assert low < 300 and high > 3050, "every original is inside the axis"
    stored = {max(r["height"], r["width"]) for r in rows}
    assert len(stored) == 1
    lines = [line for line in ax.get_lines() if list(line.get_xdata()) == [stored.pop()] * 2]
    assert lines, "the one stored size is a line, not a one-bar panel"
