import numpy as np
import pytest

from pipeline.competition import submission_file
from pipeline.core.errors import BadInputError


def test_render_and_write(tmp_path):
    path = tmp_path / "s.csv"
    digest = submission_file.write(path, np.array([3, 0, 9]))
    assert path.read_text() == "ImageId,Label\n1,3\n2,0\n3,9\n"
    assert len(digest) == 64 and submission_file.validate_file(path, 3) == 3
    assert [p.name for p in tmp_path.iterdir()] == ["s.csv"]  # no temporary left behind


def test_bad_labels_never_reach_the_file(tmp_path):
    path = tmp_path / "s.csv"
    path.write_text("ImageId,Label\n1,1\n")
    with pytest.raises(BadInputError, match="digits 0-9"):
        submission_file.write(path, np.array([1, 10]))
    assert path.read_text() == "ImageId,Label\n1,1\n"


@pytest.mark.parametrize(
    "text, expected, message",
    [
        ("Id,Label\n1,1\n", None, "line 1: header must be 'ImageId,Label'"),
        ("", None, "got 'an empty file'"),
        ("ImageId,Label\n", None, "no rows after the header"),
        ("ImageId,Label\n1,1\n1,2\n", None, "line 3, column ImageId: 1 appears twice"),
        ("ImageId,Label\n1,1\n3,2\n", None, "must run 1..2; 2 is missing"),
        ("ImageId,Label\n1,10\n", None, "line 2, column Label: 10 is not a digit"),
        ("ImageId,Label\n1,a\n", None, "line 2, column Label: 'a' is not a digit 0-9"),
        ("ImageId,Label\n1,1,1\n", None, "line 2: expected 2 cells"),
        ("ImageId,Label\n1,1\n2,2\n", 3, "2 rows, but test.csv has 3"),
    ],
)
def test_validate_file_refuses_what_kaggle_would(tmp_path, text, expected, message):
    path = tmp_path / "s.csv"
    path.write_text(text)
    with pytest.raises(BadInputError) as e:
        submission_file.validate_file(path, expected)
    assert message in str(e.value) and str(path) in str(e.value)


@pytest.mark.parametrize(
    ("row", "column"),
    [
        ("1,٣", "Label"),  # ARABIC-INDIC DIGIT THREE: int() reads 3, Kaggle reads no label
        ("1,３", "Label"),  # FULLWIDTH DIGIT THREE
        ("1,𝟑", "Label"),  # MATHEMATICAL BOLD DIGIT THREE
        ("1,³", "Label"),  # SUPERSCRIPT THREE: isdigit() says yes, int() says no
        ("1,+3", "Label"),
        ("1,-0", "Label"),
        ("١,3", "ImageId"),
        ("1_0,3", "ImageId"),  # int() reads 10
        ("0x1,3", "ImageId"),
        ("1" + "0" * 5000 + ",3", "ImageId"),  # int() refuses over 4,300 digits with a ValueError of its own
    ],
)
def test_only_ascii_digits_are_ids_and_labels(tmp_path, row, column):
    path = tmp_path / "s.csv"
    path.write_text(f"ImageId,Label\n{row}\n", encoding="utf-8")
    with pytest.raises(BadInputError) as e:
        submission_file.validate_file(path)
    assert f"line 2, column {column}" in str(e.value) and len(str(e.value)) < 300
