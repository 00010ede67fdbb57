from pathlib import Path

import pytest

from mgll_data import pipeline


@pytest.mark.parametrize("name", ["mimic-cxr", "openi", "folder", "manifest", "fundus"])
def test_every_shipped_pipeline_loads(name):
    p = pipeline.load_pipeline(name)
    assert p.layout in pipeline.LAYOUTS
    assert abs(sum(p.split.values()) - 1) < 1e-9
    assert p.content_hash and p.granularities


def test_a_user_copy_loads_from_a_path_and_hash_tracks_content(tmp_path: Path):
    text = (pipeline.PIPELINE_DIR / "mimic-cxr.yaml").read_text()
    copy = tmp_path / "mine.yaml"
    copy.write_text(text.replace("size: 512", "size: 256"))
    mine = pipeline.load_pipeline(copy)
    assert mine.image.size == 256
    assert mine.content_hash != pipeline.load_pipeline("mimic-cxr").content_hash


@pytest.mark.parametrize(
    "edit, message",
    [
        ("layout: mimic-cxr", "source.layout"),
        ("format: png", "image.format"),
        ("granularities: [modality", "unknown granularities"),
        ("split: {train: 0.8", "split must"),
    ],
)
def test_bad_pipeline_files_give_one_line_errors(tmp_path: Path, edit, message):
    text = (pipeline.PIPELINE_DIR / "mimic-cxr.yaml").read_text()
    broken = {
        "layout: mimic-cxr": text.replace("layout: mimic-cxr", "layout: pacs"),
        "format: png": text.replace("format: png ", "format: gif "),
        "granularities: [modality": text.replace("granularities: [modality", "granularities: [smell, modality"),
        "split: {train: 0.8": text.replace("split: {train: 0.8", "split: {train: 0.9"),
    }[edit]
    path = tmp_path / "bad.yaml"
    path.write_text(broken)
    with pytest.raises(pipeline.PipelineError, match=message) as info:
        pipeline.load_pipeline(path)
    assert "\n" not in str(info.value)


def test_unknown_name_lists_the_choices():
    with pytest.raises(pipeline.PipelineError, match="mimic-cxr"):
        pipeline.load_pipeline("no-such-pipeline")


def test_invalid_yaml(tmp_path: Path):
    path = tmp_path / "x.yaml"
    path.write_text("source: [unclosed")
    with pytest.raises(pipeline.PipelineError, match="not valid YAML"):
        pipeline.load_pipeline(path)


def test_an_unknown_burned_in_policy_is_refused():
    with pytest.raises(pipeline.PipelineError, match="burned_in_annotation"):
        pipeline.from_dict({"source": {"layout": "folder"}, "image": {"burned_in_annotation": "blur"}})
