import json

import pyarrow as pa
import pytest

from mgll_data import schema


def test_contract_columns_are_the_architecture_required_ones():
    names = [c.name for c in schema.base_columns()]
    for required in [
        "image_id", "patient_id", "study_id", "split", "image", "original_height", "original_width",
        "modality", "view_position", "body_part", "labels", "report_text",
    ]:
        assert required in names


def test_arrow_schema_types_and_metadata():
    s = schema.arrow_schema(["disease", "description"], ["Cardiomegaly", "Edema"], "mimic-cxr", pipeline_hash="abc")
    assert s.field("image").type == pa.struct([("bytes", pa.binary()), ("path", pa.string())])
    assert s.field("labels").type == pa.list_(
        pa.struct([("name", pa.string()), ("status", pa.int8()), ("certainty", pa.string())]))
    assert s.field("original_height").type == pa.int32()
    assert s.field("text_disease").nullable and not s.field("image_id").nullable
    assert s.names[-2:] == ["text_disease", "text_description"]
    meta = schema.read_metadata(s)
    assert meta == {
        "schema_version": schema.schema_version(),
        "label_vocabulary": ["Cardiomegaly", "Edema"],
        "granularities": ["disease", "description"],
        "pipeline": "mimic-cxr",
        "pipeline_hash": "abc",
    }
    assert json.loads(s.metadata[b"mgll.label_vocabulary"]) == ["Cardiomegaly", "Edema"]


def test_unknown_granularity_is_refused():
    with pytest.raises(ValueError, match="unknown granularities"):
        schema.columns(["disease", "smell"])


def test_rejects_schema():
    assert schema.rejects_schema().names == ["source_key", "stage", "reason", "error"]


def test_label_struct_of_schema_1_0_is_still_accepted():
    """Minor version 1.1 added `certainty` to the label struct; datasets written by 1.0 stay valid."""
    [labels] = [c for c in schema.base_columns() if c.name == "labels"]
    assert labels.older_types == (pa.list_(pa.struct([("name", pa.string()), ("status", pa.int8())])),)
    assert schema.schema_version() == "1.1.0"
