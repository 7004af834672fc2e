"""The docs cannot drift from the tool: every command that README.md and docs/*.md show is
checked against the real `streetnode` parser, and the cheap ones really run.

What counts as a command (found in every doc, so a new doc is covered when it lands):
- each line of a fenced ```sh (or shell, bash; console: the `$ ` lines) block: a complete
  command. `streetnode ...` must parse with streetnode.cli.build_parser() (options,
  choices, required arguments), and every option it names must appear in its
  subcommand's --help. `python -m MODULE` must name a module of this repository; one with
  options is run with --help and must show them. `make TARGET` must be a target whose
  recipe (`make -n`) parses. A line with `[` or `|` is a synopsis: its options are checked.
- an inline `streetnode ...` / `python -m ...` in the text: its subcommand and options must
  exist (it may be partial: "`streetnode check`").
- an inline option (`--timeout`) belongs to the last command shown before it in the same
  section, and must be one of that command's options.
A block command of bundle, provision, report (on a capture), gateway install --root,
gateway unit, demo, and the build modules also runs, per doc in the doc's order, in a
scratch directory (absolute /tmp paths are moved into it). Besides: a command outside a
```sh block, a relative link to a missing file or heading, and a doc the README does not
list fail too.
"""

import argparse
import contextlib
import importlib.util
import io
import json
import os
import re
import shlex
import subprocess
import sys
import time
from pathlib import Path

import pytest

from streetnode import cli
from streetnode.common.paths import REPO

DOCS = [REPO / "README.md"] + sorted((REPO / "docs").glob("*.md"))
SHELL_LANGS = ("sh", "shell", "bash", "console")
# Programs of other projects a doc may show; they are not ours to check.
EXTERNAL = {"mpremote", "journalctl", "pip", "pip3", "openssl", "mosquitto_sub", "mosquitto_pub",
            "systemctl", "raspi-config", "esptool", "mosquitto"}  # fmt: skip
# Modules run for real (fast, offline, write only build/): the rest get --help.
RUN_MODULES = {"streetnode.common.build", "streetnode.common.deps"}
OPTION = re.compile(r"^--[a-z0-9][a-z0-9-]*")
SHELL_OPS = {">", ">>", "|", "||", "&&", ";", "&", "2>", "2>&1"}


class Cmd:
    """A command shown in a doc: where (doc, line), its text, and how it was shown."""

    def __init__(self, doc, line, text, inline, section):
        self.doc, self.line, self.text, self.inline, self.section = doc, line, text, inline, section
        self.mentions = []  # (line, option) shown inline after it in its section

    @property
    def where(self):
        return "%s:%d" % (self.doc, self.line)

    def __repr__(self):
        return "%s `%s`" % (self.where, self.text)


# --- finding the commands -----------------------------------------------------------

_FENCE = re.compile(r"^( *)(`{3,}|~{3,})\s*([\w+-]*)[^\n]*$")
_PREFIX = re.compile(r"^(?:sudo\s+)?(?:[\w./-]*/)?(?:streetnode|python3?|micropython|make)\s+\S")


def _lines_of_blocks(text):
    """(events, prose): shell commands of the fenced blocks as (line, text), and the text
    with every fenced block blanked (line numbers kept) for the inline search."""
    lines = text.split("\n")
    prose = list(lines)
    cmds = []
    i = 0
    while i < len(lines):
        m = _FENCE.match(lines[i])
        if not m:
            i += 1
            continue
        fence, lang = m.group(2), m.group(3).lower()
        j = i + 1
        while j < len(lines) and not lines[j].strip().startswith(fence[0] * len(fence)):
            j += 1
        body = [(k + 1, lines[k]) for k in range(i + 1, j)]
        for k in range(i, min(j + 1, len(lines))):
            prose[k] = ""
        if lang in SHELL_LANGS:
            cmds.extend(_join_shell_lines(body, lang == "console"))
        i = j + 1
    return cmds, "\n".join(prose)


def _join_shell_lines(body, console):
    """Commands of one block: a trailing backslash or a more-indented next line continues
    a command (a synopsis over two lines)."""
    out = []
    cur = None
    indent = 0
    for no, raw in body:
        line = raw.rstrip()
        stripped = line.strip()
        ind = len(line) - len(line.lstrip())
        if cur is not None and (cur[2] or (stripped and ind > indent)):
            cur[1] += " " + stripped.rstrip("\\").strip()
            cur[2] = line.endswith("\\")
            continue
        if cur is not None:
            out.append((cur[0], cur[1]))
            cur = None
        if not stripped or stripped.startswith("#"):
            continue
        if console:
            if not stripped.startswith("$ "):
                continue
            stripped = stripped[2:]
        indent = ind
        cur = [no, stripped.rstrip("\\").strip(), line.endswith("\\")]
    if cur is not None:
        out.append((cur[0], cur[1]))
    return out


def extract(doc, text):
    """Every command of one doc, in order, with the inline options attached to the command
    they belong to."""
    blocks, prose = _lines_of_blocks(text)
    events = [(no, 0, "block", t) for no, t in blocks]
    offsets = [0]
    for line in prose.split("\n"):
        offsets.append(offsets[-1] + len(line) + 1)

    def line_of(pos):
        lo, hi = 0, len(offsets) - 1
        while lo < hi:
            mid = (lo + hi + 1) // 2
            if offsets[mid] <= pos:
                lo = mid
            else:
                hi = mid - 1
        return lo + 1

    for m in re.finditer(r"^#{1,6} .*$", prose, re.M):
        events.append((line_of(m.start()), -1, "heading", m.group(0)))
    for m in re.finditer(r"(?<!`)(`+)(?!`)(.+?)(?<!`)\1(?!`)", prose, re.S):
        span = " ".join(m.group(2).split())
        events.append((line_of(m.start()), m.start(), "span", span))
    events.sort(key=lambda e: (e[0], e[1]))

    cmds = []
    section = ""
    context = None
    for no, _, kind, t in events:
        if kind == "heading":
            section, context = t, None
        elif kind == "block":
            context = Cmd(doc, no, t, False, section)
            cmds.append(context)
        elif _PREFIX.match(t):
            context = Cmd(doc, no, t, True, section)
            cmds.append(context)
        elif OPTION.match(t) and context is not None:
            context.mentions.append((no, OPTION.match(t).group(0)))
    return cmds


def all_commands():
    out = []
    for path in DOCS:
        out.extend(extract(str(path.relative_to(REPO)), path.read_text(encoding="utf-8")))
    return out


# --- checking them --------------------------------------------------------------------

def words(text):
    """The command's words, without shell operators, comments, env assignments and sudo."""
    try:
        toks = shlex.split(text, comments=True)
    except ValueError as e:
        raise ValueError("not a shell command (%s)" % e)
    for i, t in enumerate(toks):
        if t in SHELL_OPS or t.startswith((">", "2>")):
            toks = toks[:i]
            break
    while toks and re.match(r"^[A-Z_][A-Z0-9_]*=", toks[0]):
        toks = toks[1:]
    if toks and toks[0] == "sudo":
        toks = toks[1:]
    return toks


def is_synopsis(text):
    return bool(re.search(r"(^|\s)\[|\|", text.split("#")[0]))


_PARSER = []
_HELP = {}


def parser():
    if not _PARSER:
        _PARSER.append(cli.build_parser())
    return _PARSER[0]


def _subparsers(p):
    for a in p._actions:
        if isinstance(a, argparse._SubParsersAction):
            return a.choices
    return None


def subcommand(args):
    """(path, its parser, the remaining words): the words that name a subcommand (and an
    action such as gateway's install) walked down the real parser."""
    p, path = parser(), []
    rest = list(args)
    while rest:
        subs = _subparsers(p)
        if not subs or rest[0].startswith("-") or rest[0] not in subs:
            break
        path.append(rest[0])
        p = subs[rest.pop(0)]
    return path, p, rest


def help_text(path):
    key = tuple(path)
    if key not in _HELP:
        out = io.StringIO()
        with contextlib.redirect_stdout(out), contextlib.suppress(SystemExit):
            parser().parse_args(list(path) + ["--help"])
        _HELP[key] = out.getvalue()
    return _HELP[key]


def options_of(p):
    return {s for a in p._actions for s in a.option_strings}


def _parse_error(argv):
    """argparse's message for argv, or None when it parses."""
    err = io.StringIO()
    with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
        try:
            parser().parse_args(argv)
        except SystemExit as e:
            if e.code not in (0, None):
                return err.getvalue().strip().splitlines()[-1] if err.getvalue().strip() else "exit %s" % e.code
    return None


def kind_of(toks):
    """streetnode / module / micropython / make / script / external (or None: unknown)."""
    if not toks:
        return None
    prog = os.path.basename(toks[0])
    if prog == "streetnode":
        return "streetnode"
    if re.match(r"^python(3(\.\d+)?)?$", prog) and len(toks) > 2 and toks[1] == "-m":
        return "module" if toks[2].split(".")[0] in ("streetnode", "host_tests", "firmware") else "external"
    if prog == "micropython":
        return "micropython"
    if prog == "make":
        return "make"
    if "/" in toks[0] and (REPO / toks[0]).is_file():
        return "script"
    if prog in EXTERNAL:
        return "external"
    return None


def check_streetnode(cmd, args):
    problems = []
    path, sub, rest = subcommand(args)
    if not path and not any(a in ("--help", "-h", "--version") for a in args):
        return ["no such subcommand: %s" % (args[0] if args else "(none)")]
    synopsis = cmd.inline or is_synopsis(cmd.text)
    if synopsis:  # a subcommand and its options, perhaps partial
        named = re.findall(r"(?<![\w-])--[a-z0-9][a-z0-9-]*", cmd.text.split("#")[0])
    else:
        named = [OPTION.match(a).group(0) for a in rest if OPTION.match(a)]
    helptext = help_text(path)
    for opt in named:
        if opt not in options_of(sub):
            problems.append("`streetnode %s` has no option %s" % (" ".join(path), opt))
        elif not re.search(r"(?<![\w-])%s(?![\w-])" % re.escape(opt), helptext):
            problems.append("%s is missing from `streetnode %s --help`" % (opt, " ".join(path)))
    for no, opt in cmd.mentions:
        if opt not in options_of(sub):
            problems.append("line %d: %s is not an option of `streetnode %s`" % (no, opt, " ".join(path)))
    if not synopsis and not problems:
        why = _parse_error(args)
        if why:
            problems.append("does not parse: %s" % why)
    return problems


def _module_help(mod):
    p = subprocess.run([sys.executable, "-m", mod, "--help"], cwd=REPO, capture_output=True, text=True, timeout=120)
    return p.returncode, p.stdout + p.stderr


def check_module(cmd, toks):
    mod, rest = toks[2], toks[3:]
    spec = importlib.util.find_spec(mod)
    if spec is None or not spec.origin:
        return ["no module %s in this repository" % mod]
    src = Path(spec.origin).read_text(encoding="utf-8")
    if "__main__" not in src:
        return ["%s does not run as a program (no __main__)" % mod]
    named = [OPTION.match(a).group(0) for a in rest if OPTION.match(a)] + [o for _, o in cmd.mentions]
    # a module parses options when it uses argparse itself or runs through bench.docs.run
    # (which answers --help for the main it wraps)
    parses = "argparse" in src or "docs.run(" in src
    if mod in RUN_MODULES or not (named or parses):
        return ["%s takes no options, but the doc gives %s" % (mod, ", ".join(named))] if named else []
    if not parses:
        return ["%s has no options (no argparse), but the doc gives %s" % (mod, ", ".join(named))]
    rc, out = _module_help(mod)
    if rc != 0:
        return ["`python -m %s --help` exits %d: %s" % (mod, rc, out.strip()[-300:])]
    return ["%s is missing from `python -m %s --help`" % (o, mod) for o in named
            if not re.search(r"(?<![\w-])%s(?![\w-])" % re.escape(o), out)]  # fmt: skip


def check_make(cmd, toks):
    targets = [t for t in toks[1:] if not t.startswith("-")]
    problems = []
    for t in targets:
        p = subprocess.run(["make", "-n", t], cwd=REPO, capture_output=True, text=True, timeout=60)
        if p.returncode != 0:
            problems.append("`make %s` is not a target: %s" % (t, p.stderr.strip()))
            continue
        for line in p.stdout.splitlines():
            w = words(line)
            if w and os.path.basename(w[0]) == "streetnode":
                why = _parse_error(w[1:])
                if why:
                    problems.append("`make %s` runs `%s`, which does not parse: %s" % (t, line, why))
    return problems


def check(cmd):
    """The problems of one command as shown in its doc ([] when there are none)."""
    try:
        toks = words(cmd.text)
    except ValueError as e:
        return [str(e)]
    kind = kind_of(toks)
    if kind is None:
        return ["not a command this test knows (add it to EXTERNAL if it is another project's)"]
    if kind == "streetnode":
        return check_streetnode(cmd, toks[1:])
    if kind == "module":
        return check_module(cmd, toks)
    if kind == "micropython":
        if len(toks) > 2 and toks[1] == "-m":
            mod = toks[2].replace(".", "/")
            if not ((REPO / (mod + ".py")).is_file() or (REPO / mod / "__init__.py").is_file()):
                return ["no module %s in this repository" % toks[2]]
        return []
    if kind == "make":
        return check_make(cmd, toks)
    if kind == "script" and not os.access(REPO / toks[0], os.X_OK):
        return ["%s is not executable" % toks[0]]
    return []


COMMANDS = all_commands()


@pytest.mark.parametrize("cmd", COMMANDS, ids=[c.where for c in COMMANDS])
def test_doc_command(cmd):
    problems = check(cmd)
    assert not problems, "%s `%s`:\n  %s" % (cmd.where, cmd.text, "\n  ".join(problems))


# --- running the cheap ones -------------------------------------------------------------

def _opt(args, name):
    if name in args:
        i = args.index(name)
        return args[i + 1] if i + 1 < len(args) else None
    return None


def _test_ca(path):
    from host_tests.test_provision import make_ca

    make_ca(Path(path))


def _capture(path, node="lamp-0042"):
    """A capture as `monitor --capture` writes it: an hour of one node at 60 s, seq 8 lost."""
    now = time.time()
    lines = [{"t": now - 3700, "topic": "streetnode/%s/status" % node,
              "payload": json.dumps({"state": "online", "fw": "0.1.0", "boot_count": 1, "reset_cause": "power_on"})}]
    for seq in range(1, 61):
        if seq == 8:
            continue
        t = now - 3600 + 60 * seq
        body = {"seq": seq, "ts": int(t), "synced": True,
                "sensors": {"air": {"temperature": 20 + seq / 100, "humidity": 50.0, "pressure": 1013.0}}}
        lines.append({"t": t, "topic": "streetnode/%s/data" % node, "payload": json.dumps(body)})
    Path(path).write_text("".join(json.dumps(x) + "\n" for x in lines))


def _run_cli(argv):
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            rc = cli.main(argv)
        except SystemExit as e:
            rc = e.code
    return rc, out.getvalue(), err.getvalue()


def runnable(cmd):
    """How to run a block command for real: a function(args, work) -> problem or None."""
    if cmd.inline or is_synopsis(cmd.text):
        return None
    toks = words(cmd.text)
    kind = kind_of(toks)
    if kind == "module" and toks[2] in RUN_MODULES:
        return "module"
    if kind != "streetnode":
        return None
    path, _, rest = subcommand(toks[1:])
    if path == ["bundle"]:
        return "bundle"
    if path == ["provision"]:
        return "provision"
    if path == ["report"] and "--capture" in rest:
        return "report"
    if path == ["gateway", "install"] and "--root" in rest and "--enable" not in rest:
        return "gateway-install"
    if path in (["gateway", "unit"], ["demo"], ["keys", "new"], ["release"], ["release", "verify"]):
        return "plain"
    return None


def run(cmd, how, work):
    """Run one command in `work`; a problem (str) or None."""
    toks = words(cmd.text)
    if how == "module":
        p = subprocess.run([sys.executable] + toks[1:], cwd=REPO, capture_output=True, text=True, timeout=600)
        return None if p.returncode == 0 else "exit %d: %s" % (p.returncode, (p.stderr or p.stdout).strip()[-300:])
    args = [str(work / a[len("/tmp/"):]) if a.startswith("/tmp/") else a for a in toks[1:]]
    if how == "bundle" and "--out" not in args:
        args += ["--out", str(work / "build" / "bundle" / _opt(args, "--target"))]
    if how == "provision":
        for name in ("--ca",):
            if _opt(args, name) and not (work / _opt(args, name)).exists():
                _test_ca(work / _opt(args, name))
    if how == "report" and not (work / _opt(args, "--capture")).exists():
        _capture(work / _opt(args, "--capture"))
    rc, out, err = _run_cli(args)
    if rc != 0:
        return "exit %s: %s" % (rc, (err or out).strip()[-400:])
    if how == "bundle":
        bundle = Path(_opt(args, "--out"))
        if not (work / bundle / "manifest.json").is_file():
            return "no manifest.json in %s" % bundle
    if how == "provision":
        node_dir = work / (_opt(args, "--out") or "nodes/%s" % _opt(args, "--id"))
        if not (node_dir / "config.json").is_file():
            return "no config.json in %s" % node_dir
    if how == "report" and not (work / (_opt(args, "--out") or "streetnode-report") / "summary.md").is_file():
        return "no summary.md written"
    if how == "gateway-install" and not (work / _opt(args, "--root") / "var/lib/streetnode/config.json").is_file():
        return "no config.json under %s" % _opt(args, "--root")
    return None


RUNS = {}
for _c in COMMANDS:
    _how = runnable(_c)
    if _how:
        RUNS.setdefault(_c.doc, []).append((_c, _how))


@pytest.mark.parametrize("doc", sorted(RUNS))
def test_doc_commands_run(doc, tmp_path, monkeypatch):
    """The doc's cheap commands, run in its order in one scratch directory (provision makes
    the config that gateway install takes, as the doc tells the reader)."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("STREETNODE_WIFI_PASSWORD", "wifi-Secret-7781")
    failed = []
    for cmd, how in RUNS[doc]:
        problem = run(cmd, how, tmp_path)
        if problem:
            failed.append("%s `%s`: %s" % (cmd.where, cmd.text, problem))
    assert not failed, "\n".join(failed)


# --- the docs as a whole ---------------------------------------------------------------

def _slug(heading):
    """GitHub's anchor of a heading."""
    text = re.sub(r"`|\*", "", heading.lstrip("#").strip().lower())
    return re.sub(r"[^\w\- ]", "", text).replace(" ", "-")


@pytest.mark.parametrize("path", DOCS, ids=[str(p.relative_to(REPO)) for p in DOCS])
def test_links_lead_somewhere(path):
    """Every relative link and image of a doc names a file that exists, and a heading in it."""
    text = path.read_text(encoding="utf-8")
    bad = []
    for target in re.findall(r"\]\(([^)\s]+)\)", text) + _IMG.findall(text):
        if re.match(r"^[a-z]+:", target):
            continue
        file, _, anchor = target.partition("#")
        dest = (path.parent / file).resolve() if file else path
        if not dest.exists():
            bad.append("%s: no such file" % target)
            continue
        if anchor and dest.suffix == ".md":
            _, prose = _lines_of_blocks(dest.read_text(encoding="utf-8"))
            slugs = {_slug(h) for h in re.findall(r"^#{1,6} .*$", prose, re.M)}
            if anchor not in slugs:
                bad.append("%s: no heading with that anchor in %s" % (target, file or path.name))
    assert not bad, "%s:\n  %s" % (path.relative_to(REPO), "\n  ".join(bad))


_IMG = re.compile(r"<img\s[^>]*?src=\"([^\"]+)\"")


def test_every_image_is_shown():
    """Each file of docs/img/ is shown by a doc (an image no doc shows is stale weight)."""
    shown = {(p.parent / src).resolve() for p in DOCS for src in _IMG.findall(p.read_text(encoding="utf-8"))}
    unshown = sorted(str(f.relative_to(REPO)) for f in (REPO / "docs" / "img").iterdir() if f.resolve() not in shown)
    assert not unshown, "no doc shows %s" % ", ".join(unshown)


def test_readme_maps_every_doc():
    readme = (REPO / "README.md").read_text(encoding="utf-8")
    missing = [p.name for p in DOCS[1:] if "(docs/%s)" % p.name not in readme]
    assert not missing, "README.md does not list %s" % ", ".join(missing)


@pytest.mark.parametrize("path", DOCS, ids=[str(p.relative_to(REPO)) for p in DOCS])
def test_no_command_hides_from_the_check(path):
    """A command in an indented code block (or a fence of another language) is not
    checked: show commands in ```sh blocks."""
    text = path.read_text(encoding="utf-8")
    hidden = []
    for no, line in enumerate(text.split("\n"), 1):
        if re.match(r"^\s*```\s*(text|txt)?\s*$", line):
            continue
        m = re.match(r"^( {4,}|\t)(\$ )?((sudo )?\S*streetnode \S|(\S*/)?python3? -m streetnode)", line)
        if m:
            hidden.append(no)
    _, prose = _lines_of_blocks(text)
    in_prose = {no for no, line in enumerate(prose.split("\n"), 1) if line.strip()}
    hidden = [no for no in hidden if no in in_prose]
    assert not hidden, "%s: commands outside a ```sh block at line(s) %s" % (path.relative_to(REPO), hidden)


def test_the_docs_show_commands():
    """The extraction finds the commands of the README and of every doc that names one."""
    docs = {c.doc for c in COMMANDS}
    assert "README.md" in docs
    for path in DOCS:
        if "streetnode " in _lines_of_blocks(path.read_text(encoding="utf-8"))[1]:
            assert str(path.relative_to(REPO)) in docs


def test_the_checker_names_the_doc_and_line_of_a_wrong_command():
    doc = "\n".join([
        "# Example", "", "```sh",
        "streetnode bundle --target esp33",                       # line 4: a bad choice
        "streetnode check lamp-1 --broker b:1883 --no-such-option",  # line 5: no such option
        "streetnode provision --id x --board esp32 \\",           # line 6: --broker missing
        "    --ssid s",
        "streetnode sim [--nodes N] [--color C]",                  # line 8: synopsis, no --color
        "frobnicate --all",                                        # line 9: unknown program
        "python -m streetnode.nowhere",                            # line 10
        "```", "",
        "With `--timeout` it waits; `--fast` does not exist.",     # line 13
        "`streetnode nosuch --x` and `python -m streetnode.bench.heap --no-opt`.",  # line 14
    ])  # fmt: skip
    cmds = extract("docs/example.md", doc)
    found = {c.line: check(c) for c in cmds}
    assert [c.where for c in cmds] == ["docs/example.md:%d" % n for n in (4, 5, 6, 8, 9, 10, 14, 14)]
    assert "invalid choice" in found[4][0] and "esp33" in found[4][0]
    assert found[5] == ["`streetnode check` has no option --no-such-option"]
    assert "--broker" in found[6][0] and "does not parse" in found[6][0]
    assert found[8] == ["`streetnode sim` has no option --color"]
    assert "not a command" in found[9][0]
    assert found[10] == ["no module streetnode.nowhere in this repository"]
    # the inline options of line 13 belong to the last command before them (line 10: a
    # module without options): --timeout and --fast are both reported there
    assert cmds[5].mentions == [(13, "--timeout"), (13, "--fast")]
    nosuch, heap = [c for c in cmds if c.line == 14]
    assert check(nosuch) == ["no such subcommand: nosuch"]
    assert check(heap) == ["--no-opt is missing from `python -m streetnode.bench.heap --help`"]
    # an inline option after a streetnode command is checked against that command
    after = extract("d.md", "```sh\nstreetnode check n --broker b\n```\n\nUse `--min-rssi` or `--max-rssi`.\n")
    assert check(after[0]) == ["line 5: --max-rssi is not an option of `streetnode check`"]
    # a heading ends the section: an option after it belongs to no command
    cut = extract("d.md", "```sh\nstreetnode check n --broker b\n```\n\n## Next\n\n`--max-rssi`\n")
    assert cut[0].mentions == []


def test_a_doc_command_that_fails_when_run_is_reported(tmp_path, monkeypatch):
    """A command that parses but fails when run (a capture with nothing in that time range)."""
    monkeypatch.chdir(tmp_path)
    bad, good = extract("docs/example.md", "```sh\n"
                        "streetnode report --capture c.jsonl --since 2001-01-01T00:00Z --until 2001-01-02T00:00Z\n"
                        "streetnode report --capture c.jsonl --since 2h --out r\n```\n")  # fmt: skip
    assert check(bad) == [] and runnable(bad) == "report"
    problem = run(bad, "report", tmp_path)
    assert problem.startswith("exit 1:") and "no node messages" in problem
    assert run(good, "report", tmp_path) is None and (tmp_path / "r" / "summary.json").is_file()
    summary = json.loads((tmp_path / "r" / "summary.json").read_text())
    assert summary["nodes"]["lamp-0042"]["missing"] == 1  # the capture's lost seq 8
