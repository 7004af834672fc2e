"""The docs' benchmark figures are written by the commands that measure them
(tools/streetnode/bench/docs.py): every generated block names a benchmark that exists and
writes it, and carries the line that says when, where and by which command it was made."""

import importlib.util
import sys

import pytest

from streetnode.bench import docs
from streetnode.common.errors import EXIT_USAGE, Failure
from streetnode.common.paths import REPO

DOCS = [REPO / "README.md"] + sorted((REPO / "docs").glob("*.md"))
PREFIX = "python -m streetnode.bench."


def _all_blocks():
    for path in DOCS:
        for command, body in docs.blocks(path.read_text(encoding="utf-8")):
            yield path.name, command, body


def test_the_docs_have_generated_blocks():
    assert any(name == "benchmarks.md" for name, _, _ in _all_blocks())


@pytest.mark.parametrize("doc,command,body", list(_all_blocks()), ids=lambda v: str(v)[:60])
def test_each_block_names_the_benchmark_that_writes_it(doc, command, body):
    assert command.startswith(PREFIX), "%s: a block not written by a benchmark: %s" % (doc, command)
    module = command[len("python -m ") :].split()[0]
    spec = importlib.util.find_spec(module)
    assert spec is not None and spec.origin, "%s: no module %s" % (doc, module)
    source = open(spec.origin, encoding="utf-8").read()
    # Its __main__ goes through docs.run under the same command, so --update finds this block.
    assert 'docs.run("python -m %s"' % module in source, "%s: %s cannot write its block" % (doc, module)
    m = docs.PROVENANCE_RE.search(body)
    assert m, "%s: the block of `%s` has no provenance line (write it with --update)" % (doc, command)
    assert m.group("command") == command and body.startswith(m.group(0)), (doc, command, m.group(0))
    assert body[m.end() :].strip(), "%s: the block of `%s` is empty" % (doc, command)


def test_no_block_is_left_open_or_nested():
    for path in DOCS:
        text = path.read_text(encoding="utf-8")
        assert text.count("<!-- bench: ") == text.count("<!-- /bench -->") == len(docs.blocks(text)), path.name


DOC = "# B\n\nbefore\n\n<!-- bench: python -m x --a -->\nold\n<!-- /bench -->\n\nbetween\n\n" \
      "<!-- bench: python -m y -->\nkept\n<!-- /bench -->\nafter\n"  # fmt: skip


def test_replace_writes_only_its_block():
    out = docs.replace(DOC, "python -m x --a", "new\n")
    assert out == DOC.replace("old\n", "new\n")
    assert docs.replace(out, "python -m x --a", "old\n") == DOC


def test_replace_refuses_a_missing_or_doubled_block():
    with pytest.raises(Failure) as e:
        docs.replace(DOC, "python -m x", "new\n")  # the options are part of the command
    assert e.value.code == EXIT_USAGE and "no block <!-- bench: python -m x -->" in str(e.value)
    with pytest.raises(Failure) as e:
        docs.replace(DOC + DOC, "python -m y", "new\n")
    assert "2 blocks" in str(e.value)


def test_split_update():
    assert docs.split_update(["--a", "--update", "d.md", "--b"]) == (["--a", "--b"], "d.md")
    assert docs.split_update(["--update=d.md"]) == ([], "d.md")
    assert docs.split_update(["--a"]) == (["--a"], None)
    with pytest.raises(Failure):
        docs.split_update(["--update"])


def _bench(argv):
    print("| a | b |\n|---|---:|\n| x | %s |" % argv[-1])
    return 0


def test_run_writes_the_output_with_its_provenance(tmp_path, capsys):
    doc = tmp_path / "d.md"
    doc.write_text("t\n<!-- bench: python -m z --markdown 7 -->\n<!-- /bench -->\nend\n")
    assert docs.run("python -m z", _bench, ["--markdown", "7", "--update", str(doc)]) == 0
    text = doc.read_text()
    [(command, body)] = docs.blocks(text)
    assert command == "python -m z --markdown 7"
    m = docs.PROVENANCE_RE.search(body)
    assert m and m.group("command") == command and "cores" in body and "CPython" in body
    assert body.endswith("| x | 7 |\n") and text.endswith("<!-- /bench -->\nend\n")
    assert "written" in capsys.readouterr().out
    # without --markdown the output is fenced as text
    doc.write_text("<!-- bench: python -m z 8 -->\n<!-- /bench -->\n")
    assert docs.run("python -m z", _bench, ["8", "--update", str(doc)]) == 0
    assert "```text\n| a | b |" in doc.read_text()


def test_run_leaves_the_doc_alone_when_the_benchmark_fails_or_has_no_block(tmp_path, capsys):
    doc = tmp_path / "d.md"
    doc.write_text("<!-- bench: python -m z -->\nold\n<!-- /bench -->\n")
    before = doc.read_text()

    def failing(argv):
        print("partial")
        return 1

    assert docs.run("python -m z", failing, ["--update", str(doc)]) == 1
    assert doc.read_text() == before
    ran = []
    assert docs.run("python -m z", lambda argv: ran.append(argv) or 0, ["--other", "--update", str(doc)]) == EXIT_USAGE
    assert ran == [] and doc.read_text() == before  # refused before the run
    assert "no block" in capsys.readouterr().err


def test_help_names_the_update_option(capsys):
    import subprocess

    out = subprocess.run([sys.executable, "-m", "streetnode.bench.flash", "--help"], capture_output=True, text=True,
                         cwd=str(REPO), timeout=60)  # fmt: skip
    assert out.returncode == 0 and "--records" in out.stdout and "--update DOC" in out.stdout
