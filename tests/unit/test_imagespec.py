"""The one image selector (wimfs.imagespec), on its own: against real files and a WIM
with images named by wimlib-imagex (names with spaces and colons, a numeric name)."""

from __future__ import annotations

import subprocess

import pytest

from tests.unit.conftest import require_tool
from wimfs.errors import ImageNotFoundError, UsageError, exit_code_for
from wimfs.imagespec import ImageSpec, check_index, parse_image_spec
from wimfs.wim import Wim

NAMES = ["one", "two: with colon", "with space", "42"]


@pytest.fixture(scope="module")
def multi(tmp_path_factory) -> str:
    """A 4-image WIM made by wimlib (the oracle of the names and their order)."""
    require_tool("wimlib-imagex")
    base = tmp_path_factory.mktemp("spec")
    src = base / "src"
    src.mkdir()
    (src / "f").write_bytes(b"x")
    wim = base / "multi.wim"
    subprocess.run(["wimlib-imagex", "capture", src, wim, NAMES[0]], check=True,
                   capture_output=True)
    for n in NAMES[1:]:
        subprocess.run(["wimlib-imagex", "append", src, wim, n], check=True,
                       capture_output=True)
    return str(wim)


@pytest.fixture(scope="module")
def single(multi, tmp_path_factory) -> str:
    wim = tmp_path_factory.mktemp("single") / "single.wim"
    subprocess.run(["wimlib-imagex", "export", multi, "1", wim], check=True,
                   capture_output=True)
    return str(wim)


def resolve(text: str, **kw) -> list[int]:
    allow_all = kw.pop("allow_all", False)
    spec = parse_image_spec(text, **kw)
    with Wim(spec.path) as wim:
        return spec.resolve(wim, allow_all=allow_all)


def test_split_longest_existing_prefix(tmp_path):
    plain = tmp_path / "a.wim"
    plain.write_bytes(b"")
    assert parse_image_spec(str(plain)) == ImageSpec(str(plain), None)
    assert parse_image_spec(f"{plain}:3") == ImageSpec(str(plain), "3")
    assert parse_image_spec(f"{plain}:all") == ImageSpec(str(plain), "all")
    assert parse_image_spec(f"{plain}:a: b c") == ImageSpec(str(plain), "a: b c")
    # A file whose own name has a colon: the longest existing prefix wins.
    colon = tmp_path / "b.wim:x"
    colon.write_bytes(b"")
    (tmp_path / "b.wim").write_bytes(b"")
    assert parse_image_spec(str(colon)) == ImageSpec(str(colon), None)
    assert parse_image_spec(f"{colon}:2") == ImageSpec(str(colon), "2")
    assert parse_image_spec(f"{tmp_path}/b.wim:y") == ImageSpec(f"{tmp_path}/b.wim", "y")


def test_missing_file_keeps_a_numeric_selector_apart(tmp_path):
    missing = str(tmp_path / "nope.wim")
    assert parse_image_spec(f"{missing}:2") == ImageSpec(missing, "2")
    assert parse_image_spec(f"{missing}:all") == ImageSpec(missing, "all")
    assert parse_image_spec(f"{missing}:name") == ImageSpec(f"{missing}:name", None)


def test_numbers_names_and_all(multi):
    for i, name in enumerate(NAMES, 1):
        if name != "42":                      # a number after the colon is an index
            assert resolve(f"{multi}:{name}") == [i]
        assert resolve(multi, name=name) == [i]
        assert resolve(f"{multi}:{i}") == [i]
        assert resolve(multi, index=i) == [i]
        assert resolve(multi, index=str(i)) == [i]
    assert resolve(f"{multi}:all", allow_all=True) == [1, 2, 3, 4]
    assert resolve(multi, index="all", allow_all=True) == [1, 2, 3, 4]


def test_a_number_is_an_index_unless_given_as_name(multi):
    # "42" after the colon is an index (out of range); --name 42 is the image named "42".
    with pytest.raises(ImageNotFoundError, match="no image 42 \\(the WIM has 4 images\\)"):
        resolve(f"{multi}:42")
    assert resolve(multi, name="42") == [4]


def test_out_of_range_and_unknown_names_exit_4(multi, single):
    for text, kw, msg in ((f"{multi}:5", {}, "no image 5 (the WIM has 4 images)"),
                          (multi, {"index": 9}, "no image 9 (the WIM has 4 images)"),
                          (f"{single}:2", {}, "no image 2 (the WIM has 1 image)"),
                          (f"{multi}:nope", {}, "no image named 'nope'"),
                          (multi, {"name": "One"}, "no image named 'One'")):
        with pytest.raises(ImageNotFoundError) as e:
            resolve(text, **kw)
        assert msg in str(e.value) and exit_code_for(e.value) == 4


def test_usage_errors_exit_2(multi, single):
    cases = [lambda: resolve(multi),                                  # multi, no selector
             lambda: resolve(f"{multi}:all"),                         # all not allowed
             lambda: resolve(f"{multi}:0"),
             lambda: resolve(f"{multi}:"),
             lambda: resolve(f"{multi}:1", index=2),                  # chosen twice
             lambda: resolve(multi, index=1, name="one"),
             lambda: resolve(multi, index="x"),
             lambda: resolve(multi, index=-1),
             lambda: resolve(multi, name=""),
             lambda: parse_image_spec("")]
    for case in cases:
        with pytest.raises(UsageError) as e:
            case()
        assert exit_code_for(e.value) == 2 and "\n" not in str(e.value)
    with pytest.raises(UsageError, match="IMAGE:N, IMAGE:NAME, --index N or --name NAME"):
        resolve(multi)
    assert resolve(single) == [1]
    spec = parse_image_spec(single)
    with Wim(single) as wim, pytest.raises(UsageError):
        spec.resolve(wim, default_single=False)


def test_with_selector(multi):
    spec = parse_image_spec(multi)
    assert spec.with_selector("with space") == ImageSpec(multi, "with space")
    assert spec.with_selector("3") == ImageSpec(multi, "3")
    with pytest.raises(UsageError, match="chosen twice"):
        parse_image_spec(f"{multi}:1").with_selector("2")


def test_check_index():
    assert check_index("007") == "7"
    assert check_index("all") == "all"
    for bad in ("0", "-1", "x", "1.5", "²", ""):
        with pytest.raises(UsageError):
            check_index(bad)
    with pytest.raises(UsageError):
        check_index("all", allow_all=False)


def test_image_lists(multi, tmp_path):
    """``1,3,5``: several images by number, in the order given; a usage error where
    one image is needed; every number checked against the WIM."""
    assert resolve(f"{multi}:3,1", allow_all=True) == [3, 1]
    assert resolve(f"{multi}:01,04", allow_all=True) == [1, 4]
    assert parse_image_spec(f"{multi}:01,04") == ImageSpec(multi, "1,4")
    assert parse_image_spec(f"{multi}:2,4").is_multi
    assert parse_image_spec(f"{multi}:all").is_multi
    assert not parse_image_spec(f"{multi}:2").is_multi
    assert not parse_image_spec(multi, name="1,2").is_multi
    missing = str(tmp_path / "nope.wim")
    assert parse_image_spec(f"{missing}:1,2") == ImageSpec(missing, "1,2")
    with pytest.raises(UsageError, match="a list of images cannot be used here"):
        resolve(f"{multi}:1,2")
    with pytest.raises(ImageNotFoundError, match="no image 5 \\(the WIM has 4 images\\)"):
        resolve(f"{multi}:1,5", allow_all=True)
    for bad in ("1,1", "0,2", "2,0"):
        with pytest.raises(UsageError) as e:
            parse_image_spec(f"{multi}:{bad}")
        assert exit_code_for(e.value) == 2
    # Not a list of numbers: an image name (none is called that).
    with pytest.raises(ImageNotFoundError, match="no image named '1,x'"):
        resolve(f"{multi}:1,x", allow_all=True)
