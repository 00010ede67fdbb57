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
    assert "image_id" in schema.required_columns() and "text_disease" not in schema.required_columns()
    assert all(f.nullable for f in s), "declared as `datasets` declares them, so it applies the features"
    assert s.names[-2:] == ["text_disease", "text_description"]
    meta = schema.read_metadata(s)
    assert meta == {
        "schema_version": schema.schema_version(),
        "label_vocabulary": ["Cardiomegaly", "Edema"],
        "granularities": ["disease", "description"],
        "pipeline": "mimic-cxr",
        "pipeline_hash": "abc",
        "huggingface_features": schema.huggingface_features(["disease", "description"]),
    }
    assert json.loads(s.metadata[b"mgll.label_vocabulary"]) == ["Cardiomegaly", "Edema"]


def test_unknown_granularity_is_refused():
    with pytest.raises(ValueError, match="unknown granularities"):
        schema.columns(["disease", "smell"])


def test_rejects_schema():
    assert schema.rejects_schema().names == ["source_key", "stage", "reason", "error"]


def test_label_struct_of_schema_1_0_is_still_accepted():
    """Minor version 1.2 added `certainty` to the label struct; datasets written before stay valid."""
    [labels] = [c for c in schema.base_columns() if c.name == "labels"]
    assert labels.older_types == (pa.list_(pa.struct([("name", pa.string()), ("status", pa.int8())])),)
    assert schema.schema_version() == "1.3.0"


def test_huggingface_features_are_the_arrow_schema_with_an_image_feature():
    import datasets

    granularities = ["disease", "study"]
    features = datasets.Features.from_dict(schema.huggingface_features(granularities))
    assert isinstance(features["image"], datasets.Image)
    arrow = schema.arrow_schema(granularities, ["Edema"], "mimic-cxr")
    assert features.arrow_schema.names == arrow.names
    for field in arrow:
        assert features.arrow_schema.field(field.name) == field, field.name  # else `datasets` ignores the feature
    assert datasets.Features.from_arrow_schema(arrow) == features



def test_item_columns_are_optional_and_declared_with_their_vocabulary():
    import datasets

    granularities = ["modality", "disease", "description"]
    plain = schema.arrow_schema(granularities, ["A"], "p")
    assert not [n for n in plain.names if n.startswith("items_")] and "item_vocabulary" not in schema.read_metadata(
        plain
    )
    with_items = schema.arrow_schema(granularities, ["A"], "p", item_vocabulary=["normal", "A", "A|left"])
    assert [n for n in with_items.names if n.startswith("items_")] == ["items_disease", "items_description"]
    assert with_items.field("items_disease").type == pa.list_(pa.string())
    assert schema.read_metadata(with_items)["item_vocabulary"] == ["normal", "A", "A|left"]
    features = datasets.Features.from_dict(schema.read_metadata(with_items)["huggingface_features"])
    assert set(features) == set(with_items.names)
    assert [c.name for c in schema.columns(granularities)] == [n for n in plain.names]  # not required columns
