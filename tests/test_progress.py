"""Progress off a terminal: a job whose output goes to a log file shows it from the first second."""

from __future__ import annotations

from geovec import progress
from geovec.progress import progress_bar


def test_off_a_terminal_progress_is_a_line_at_the_start_then_lines_over_time_and_at_the_end(capsys, monkeypatch):
    with progress_bar(4, "embedding") as bar:
        assert capsys.readouterr().err == "embedding 0/4 (0 s)\n"  # before the first item is done
        bar.advance()
        assert capsys.readouterr().err == ""  # not a line per item
        monkeypatch.setattr(progress._Lines, "every_s", 0.0)
        bar.advance(2)
        assert capsys.readouterr().err.startswith("embedding 3/4 (0 s, ~0 s left)")
    assert capsys.readouterr().err == ""  # stopped at 3: that line stands as the last
    with progress_bar(2, "indexing") as bar:
        bar.advance(2)
    assert capsys.readouterr().err.splitlines()[-1].startswith("indexing 2/2 (")


def test_a_disabled_or_transient_bar_writes_nothing_off_a_terminal(capsys):
    for options in ({"enabled": False}, {"transient": True}):
        with progress_bar(2, "reading", **options) as bar:
            bar.advance(2)
    assert capsys.readouterr().err == ""
