import json
import os

import pytest

from mgll_data.output_file import OutputFileError, check_replaceable, read_json, replaced_whole, same_json_shape


def _never(path):
    raise AssertionError("the recogniser must not be asked about a path that does not exist")


def test_a_new_path_is_always_writable(tmp_path):
    check_replaceable(tmp_path / "new.csv", _never, "a labels file")


def test_only_what_the_recogniser_claims_is_replaced(tmp_path):
    mine = tmp_path / "mine.json"
    mine.write_text('{"ok": true}')
    check_replaceable(mine, lambda p: read_json(p)["ok"] is True, "a summary")
    with pytest.raises(OutputFileError, match=r"mine\.json exists and is not a summary written by mgll"):
        check_replaceable(mine, lambda p: False, "a summary")


def test_a_recogniser_that_cannot_read_the_file_means_not_ours(tmp_path):
    binary = tmp_path / "scan.json"
    binary.write_bytes(b"\xff\xfe\x00garbage")
    with pytest.raises(OutputFileError, match="not a JSON summary"):
        check_replaceable(binary, lambda p: isinstance(read_json(p), dict), "a JSON summary")


def test_folders_and_links_are_never_replaced(tmp_path):
    (tmp_path / "folder").mkdir()
    with pytest.raises(OutputFileError, match="not a regular file"):
        check_replaceable(tmp_path / "folder", lambda p: True, "a labels file")
    target = tmp_path / "target.csv"
    target.write_text("a,b\n")
    os.symlink(target, tmp_path / "link.csv")
    with pytest.raises(OutputFileError, match="not a regular file"):
        check_replaceable(tmp_path / "link.csv", lambda p: True, "a labels file")
    os.symlink(tmp_path / "gone.csv", tmp_path / "dangling.csv")
    with pytest.raises(OutputFileError, match="not a regular file"):
        check_replaceable(tmp_path / "dangling.csv", lambda p: True, "a labels file")


@pytest.mark.parametrize(
    ("old", "new", "same"),
    [
        ({"dataset": "a", "ok": True}, {"dataset": "b", "ok": False, "errors": []}, True),
        ({"name": "my-package", "version": "1"}, {"dataset": "b", "ok": True}, False),
        ({}, {"dataset": "b"}, False),
        ([{"step": "export"}], [{"step": "build"}], True),
        ([], [{"step": "build"}], True),
        ([{"id": 1}], [{"step": "build"}], False),
        ({"step": "x"}, [{"step": "x"}], False),
        ("text", "text", False),
    ],
)
def test_same_json_shape(old, new, same):
    assert same_json_shape(json.loads(json.dumps(old)), new) is same


def test_a_file_is_replaced_whole_or_not_at_all(tmp_path):
    target = tmp_path / "labels.csv"
    target.write_text("old,whole\n")
    with pytest.raises(OSError) as failed, replaced_whole(target) as partial:
        partial.write_text("new,half")
        raise OSError(28, "No space left on device", str(partial))
    assert failed.value.filename == str(target), "the error names the file the user asked for, not the partial one"
    assert target.read_text() == "old,whole\n" and sorted(p.name for p in tmp_path.iterdir()) == ["labels.csv"]
    with replaced_whole(target) as partial:
        partial.write_text("new,whole\n")
        assert target.read_text() == "old,whole\n", "readers see the old file until the new one is complete"
    assert target.read_text() == "new,whole\n" and sorted(p.name for p in tmp_path.iterdir()) == ["labels.csv"]
