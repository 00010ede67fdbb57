"""The README's one-liners that filter a dataset by its label struct run as documented, in pandas,
polars and duckdb, on a shard written with the contract's label type."""

from __future__ import annotations

from pathlib import Path

import duckdb
import pandas as pd
import polars as pl
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from mgll_data import schema

README = Path(__file__).resolve().parents[1] / "README.md"
LINES = {
    "pandas": 'df[df["labels"].map(lambda labels: any(l["name"] == "Effusion" and l["status"] == 1 for l in labels))]',
    "polars": 'pl.read_parquet("OUT/data/*.parquet").filter(pl.col("labels").list.eval('
    '(pl.element().struct.field("name") == "Effusion") & (pl.element().struct.field("status") == 1)).list.any())',
    "duckdb": "duckdb.sql(\"SELECT * FROM 'OUT/data/*.parquet' WHERE len(list_filter(labels, lambda l: l.name = "
    "'Effusion' AND l.status = 1)) > 0\")",
}


@pytest.fixture(scope="module")
def out(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("OUT")
    (root / "data").mkdir()
    [labels] = [c for c in schema.base_columns() if c.name == "labels"]
    rows = [
        [{"name": "Effusion", "status": 1, "certainty": "definite"}],
        [
            {"name": "Effusion", "status": 0, "certainty": "negated"},
            {"name": "Edema", "status": 1, "certainty": "definite"},
        ],
        [{"name": "Effusion", "status": None, "certainty": "possible"}],
        [],
    ]
    table = pa.table({"image_id": ["a", "b", "c", "d"], "labels": pa.array(rows, labels.type)})
    pq.write_table(table, root / "data" / "train-00000.parquet")
    return root


@pytest.mark.parametrize("library", list(LINES))
def test_filter_line_is_documented_and_works(out, library):
    line = LINES[library]
    assert line in README.read_text(encoding="utf-8"), f"the README's {library} line changed"
    df = pd.read_parquet(out / "data")
    result = eval(line.replace("OUT", str(out)), {"pd": pd, "pl": pl, "duckdb": duckdb, "df": df})
    if library == "duckdb":
        result = result.df()
    ids = list(result["image_id"])
    assert ids == ["a"]
