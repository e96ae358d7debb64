"""docker's human units, table writer and ellipsis."""

from __future__ import annotations

import pytest

from dockyard.cli.formatting import ellipsis, human_duration, human_size, tabwrite, truncate_id


@pytest.mark.parametrize("size, expected", [
    (0, "0B"), (999, "999B"), (1000, "1kB"), (4_260_000, "4.26MB"), (4_264_000, "4.26MB"),
    (7_380_000, "7.38MB"), (123_456_789, "123MB"), (1_500_000_000, "1.5GB"), (999_500, "1e+03kB"),
])
def test_human_size(size: int, expected: str) -> None:
    assert human_size(size) == expected


@pytest.mark.parametrize("seconds, expected", [
    (0.5, "Less than a second"), (1, "1 second"), (2, "2 seconds"), (59, "59 seconds"),
    (60, "About a minute"), (119, "About a minute"), (300, "5 minutes"), (3600, "About an hour"),
    (2 * 3600, "2 hours"), (47 * 3600, "47 hours"), (3 * 86400, "3 days"), (15 * 86400, "2 weeks"),
    (90 * 86400, "3 months"), (800 * 86400, "2 years"),
])
def test_human_duration(seconds: float, expected: str) -> None:
    assert human_duration(seconds) == expected


def test_tabwrite_matches_docker_columns() -> None:
    text = "CONTAINER ID\tIMAGE\tNAMES\nabc\tbusybox\tweb\n"
    assert tabwrite(text) == ("CONTAINER ID   IMAGE     NAMES\n"
                              "abc            busybox   web\n")


def test_tabwrite_unicode_width() -> None:
    assert tabwrite("a…\tb\nccc\td\n") == "a…        b\nccc       d\n"


def test_ellipsis_and_truncate_id() -> None:
    assert ellipsis("sh -c while true; do sleep 1; done", 20) == "sh -c while true; d…"
    assert ellipsis("short", 20) == "short"
    assert truncate_id("sha256:" + "ab" * 32) == "abababababab"
