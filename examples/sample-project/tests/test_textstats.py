import json

from textstats import count, report, words_of
from textstats.__main__ import main


def test_words_are_lower_cased_and_stripped():
    assert words_of("Hello, world! (Hello)") == ["hello", "world", "hello"]


def test_count_lines_words_characters():
    stats = count("one two\nthree two\n")
    assert (stats.lines, stats.words, stats.characters) == (2, 4, 18)
    assert stats.top_words[0] == ("two", 2)


def test_empty_text_counts_nothing():
    stats = count("")
    assert (stats.lines, stats.words, stats.top_words) == (0, 0, [])


def test_report_lists_top_words():
    text = report("notes.txt", count("a b a").to_dict())
    assert text.startswith("# notes.txt")
    assert "| a | 2 |" in text


def test_command_line_writes_json_then_markdown(tmp_path):
    source = tmp_path / "in.txt"
    source.write_text("red green red\n", encoding="utf-8")
    stats_file, report_file = tmp_path / "out" / "stats.json", tmp_path / "out" / "report.md"
    assert main(["count", str(source), "--out", str(stats_file)]) == 0
    assert json.loads(stats_file.read_text())["words"] == 3
    assert main(["report", str(stats_file), "--out", str(report_file)]) == 0
    assert "| red | 2 |" in report_file.read_text()
