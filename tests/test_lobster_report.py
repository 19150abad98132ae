"""LOBSTER orderbook check: contradictions between the orderbook file and the messages are
reported (row, field), apart from the legitimate corrections, counted by kind."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

import mmsim.data.lobster as lobster_module
import mmsim.data.validate as validate_module
from mmsim.data import read_lobster
from mmsim.data.lobster_csv import read_lobster_orderbook
from mmsim.data.validate import check_lobster_orderbook, check_lobster_reconstruction

NAME = "TEST_2012-06-21_34200000_57600000_{}_{}.csv"


def write_pair(tmp_path: Path, case: list[tuple[str, str]], levels: int = 1) -> tuple[Path, Path]:
    msg = tmp_path / NAME.format("message", levels)
    ob = tmp_path / NAME.format("orderbook", levels)
    msg.write_text("\n".join(m for m, _ in case) + "\n")
    ob.write_text("\n".join(o for _, o in case) + "\n")
    return msg, ob


# message, orderbook row (ask_px_1, ask_sz_1, bid_px_1, bid_sz_1); rows 6 and 8 are wrong
LEVEL1_CASE = [
    ("34200.1,1,1,100,1000000,1", "1000200,40,1000000,300"),  # 1: 40 + 200 rest before open
    ("34200.2,1,2,50,1000100,-1", "1000100,50,1000000,300"),  # 2: explained
    ("34200.3,3,2,50,1000100,-1", "1000200,70,1000000,300"),  # 3: 100.02 back into view, +30
    ("34200.4,4,77,250,1000000,1", "1000200,70,1000000,50"),  # 4: unknown id executed
    ("34200.5,2,78,50,1000000,1", "1000200,70,999900,80"),  # 5: 99.99 into view, +80
    ("34200.6,1,3,10,999900,1", "1000200,70,999900,95"),  # 6: 80 + 10 is 90, not 95
    ("34200.7,1,4,5,999900,1", "1000200,70,999900,95"),  # 7: 90 + 5 = 95: explained
    ("34200.8,5,0,10,1000150,-1", "1000300,70,999900,95"),  # 8: the ask moved one cent alone
    ("34200.9,5,0,10,1000150,-1", "1000200,70,999900,95"),  # 9: explained again
    ("34201.0,3,3,10,999900,1", "1000200,70,999900,85"),  # 10: explained
    ("34201.1,4,79,70,1000200,-1", "1000300,20,999900,85"),  # 11: 100.03 into view, 70 -> 20
]

LEVEL1_CONTRADICTIONS = [
    {
        "row": 6,
        "field": "bid_sz_1",
        "file_value": 95,
        "price": 999900,
        "file_size": 95,
        "messages_size": 90,
    },
    {
        "row": 8,
        "field": "ask_px_1",
        "file_value": 1000300,
        "price": 1000200,
        "file_size": 0,
        "messages_size": 70,
    },
]


def test_contradictions_and_corrections_by_kind_exact(tmp_path):
    msg, ob = write_pair(tmp_path, LEVEL1_CASE)
    r = read_lobster(msg, ob)
    assert r.report["orderbook_check"] == {
        "rows_checked": 11,
        "levels": 1,
        "contradictions": 2,
        "first_contradiction_rows": [6, 8],
        "first_contradictions": LEVEL1_CONTRADICTIONS,
        "corrections_by_kind": {
            "before_open": {"rows": 1, "levels": 2, "shares_added": 240, "shares_removed": 0},
            "into_view": {"rows": 4, "levels": 4, "shares_added": 180, "shares_removed": 50},
        },
    }
    # the replay still follows the file everywhere (rows 6 and 8 included) ...
    check = check_lobster_reconstruction(r.events, ob)
    assert check["replay_mismatches"] == 0 and check["first_replay_mismatch_row"] is None
    # ... and the reconstruction check no longer hides the contradictions
    assert check["contradictions"] == 2 and check["first_contradiction_rows"] == [6, 8]
    assert check["first_contradictions"] == LEVEL1_CONTRADICTIONS
    assert check["corrections_by_kind"] == r.report["orderbook_check"]["corrections_by_kind"]
    # the check reads the messages only: a stream without corrections gives the same answer
    bare = read_lobster(msg).events
    check = check_lobster_reconstruction(bare, ob)
    assert check["replay_mismatches"] > 0
    assert check["contradictions"] == 2 and check["first_contradictions"] == LEVEL1_CONTRADICTIONS


def test_consistent_file_has_no_contradiction(tmp_path):
    fixed = list(LEVEL1_CASE)
    fixed[5] = (fixed[5][0], "1000200,70,999900,90")
    fixed[6] = (fixed[6][0], "1000200,70,999900,95")
    fixed[7] = (fixed[7][0], "1000200,70,999900,95")
    msg, ob = write_pair(tmp_path, fixed)
    report = read_lobster(msg, ob).report["orderbook_check"]
    assert report["contradictions"] == 0
    assert report["first_contradiction_rows"] == [] and report["first_contradictions"] == []
    assert report["corrections_by_kind"]["into_view"]["levels"] == 3  # row 8 no longer one


# level 2: (ask_px_1, ask_sz_1, bid_px_1, bid_sz_1, ask_px_2, ask_sz_2, bid_px_2, bid_sz_2)
LEVEL2_CASE = [
    ("34200.1,1,1,10,1000000,1", "1000200,5,1000000,10,1000300,7,999900,20"),
    ("34200.2,3,1,10,1000000,1", "1000200,5,999900,20,1000300,7,999800,4"),  # 99.98 in view
    ("34200.3,1,2,3,999800,1", "1000200,5,999900,20,1000300,7,999800,6"),  # 4 + 3 is 7
]


def test_level2_covered_depth(tmp_path):
    msg, ob = write_pair(tmp_path, LEVEL2_CASE, levels=2)
    report = read_lobster(msg, ob).report["orderbook_check"]
    assert report["levels"] == 2
    assert report["first_contradiction_rows"] == [3]
    assert report["first_contradictions"] == [
        {
            "row": 3,
            "field": "bid_sz_2",
            "file_value": 6,
            "price": 999800,
            "file_size": 6,
            "messages_size": 7,
        }
    ]
    assert report["corrections_by_kind"] == {
        "before_open": {"rows": 1, "levels": 3, "shares_added": 32, "shares_removed": 0},
        "into_view": {"rows": 1, "levels": 1, "shares_added": 4, "shares_removed": 0},
    }
    # compared on level 1 only, row 3's level 2 is not covered: nothing to contradict
    events = read_lobster(msg).events
    one = check_lobster_orderbook(events, read_lobster_orderbook(ob), levels=1)
    assert one["levels"] == 1 and one["contradictions"] == 0


def test_validate_and_lobster_do_not_import_each_other():
    """lobster imports validate; validate must not import lobster (not even lazily)."""

    def imported(module) -> set[str]:
        tree = ast.parse(Path(module.__file__).read_text())
        names = set()
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom) and node.module:
                names.add(node.module)
            elif isinstance(node, ast.Import):
                names.update(a.name for a in node.names)
        return names

    assert "mmsim.data.validate" in imported(lobster_module)
    assert "mmsim.data.lobster" not in imported(validate_module)


# ---------------------------------------------------------------- real data
AMZN = "lobster/AMZN_2012-06-21_34200000_57600000_{}_1.csv"
COLUMNS = {"ask_px_1": 0, "ask_sz_1": 1, "bid_px_1": 2, "bid_sz_1": 3}


@pytest.mark.realdata
@pytest.mark.parametrize(
    ("row", "field", "delta", "replay_check"),
    [
        (1000, "ask_px_1", 100, False),  # one cent worse
        (1000, "bid_px_1", 100, False),  # one cent better
        (30000, "bid_sz_1", 1, True),  # one more share
        (30000, "ask_sz_1", -1, False),  # one share fewer
    ],
)
def test_amzn_injected_change_is_reported(data_root, tmp_path, row, field, delta, replay_check):
    lines = (data_root / AMZN.format("orderbook")).read_text().split("\n")
    cells = lines[row - 1].split(",")
    cells[COLUMNS[field]] = str(int(cells[COLUMNS[field]]) + delta)
    lines[row - 1] = ",".join(cells)
    ob = tmp_path / Path(AMZN.format("orderbook")).name
    ob.write_text("\n".join(lines))
    r = read_lobster(data_root / AMZN.format("message"), ob)
    report = r.report["orderbook_check"]
    assert report["contradictions"] == 1
    assert report["first_contradiction_rows"] == [row]
    assert [c["row"] for c in report["first_contradictions"]] == [row]
    assert report["first_contradictions"][0]["field"] == field
    assert report["first_contradictions"][0]["file_value"] == int(cells[COLUMNS[field]])
    if replay_check:
        check = check_lobster_reconstruction(r.events, ob)
        assert check["replay_mismatches"] == 0  # the replay follows the (changed) file
        assert check["contradictions"] == 1 and check["first_contradiction_rows"] == [row]
