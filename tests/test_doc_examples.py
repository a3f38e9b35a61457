"""The code examples of README.md and docs/*.md run, so the docs cannot drift from the code.

Every fenced block is one test case, named ``file:line`` (the line of its opening fence):

- ```python blocks run on the CPU in a temporary working directory; a file's blocks run in order in
  one namespace, like a doctest session (a later block may use what an earlier one defined).
- ```bash / ```sh / ```shell / ```console blocks: every ``ddfast ...`` command (also as
  ``python -m ddfast ...`` or ``torchrun ... -m ddfast ...``) is parsed by the real
  argument parser (``ddfast.cli.build_parser``) and a ``--preset`` must name a preset, but nothing
  runs; other commands must be on the SETUP_COMMANDS list below.
- Other languages (```text, ```toml, plain ```) are not run.

A Python example too slow for a test gets an HTML comment right before its fence, invisible on the
rendered page: ``<!-- test: replace "iterations=1000" "iterations=2" -->`` runs the block with the
first text replaced by the second (which must occur in the block); either text may be in single
quotes instead. Keep such markers few.
"""
from __future__ import annotations

import contextlib
import io
import re
import shlex
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import torch

from ddfast.cli import build_parser
from ddfast.distill.presets import PRESETS

ROOT = Path(__file__).resolve().parents[1]
PYTHON = ("python", "py")
SHELL = ("bash", "sh", "shell", "console")
# Shell commands of the docs that are not ddfast's (setup and tests), by their first words.
SETUP_COMMANDS = (
    ("pip", "install"),
    ("python", "-m", "pip", "install"),
    ("python", "-m", "pytest"),
    ("python", "-m", "venv"),
    ("python3", "-m", "venv"),
    ("source", ".venv/bin/activate"),
)
LAUNCHERS = ("python", "python3", "torchrun")  # `LAUNCHER [options] -m ddfast ...` runs ddfast
SEPARATORS = ("&&", "||", ";", "|", "&")
REDIRECTS = (">", ">>", "<", ">&", "&>", ">>&")  # dropped with their target: `> out.json`, `2>&1`
FENCE = re.compile(r"^(\s*)```\s*([\w+-]*)")
# Each text in double or single quotes, so that either kind can occur inside the other.
MARKER = re.compile(r"""^\s*<!-- test: replace (["'])(.*?)\1 (["'])(.*?)\3 -->\s*$""")


@dataclass
class Block:
    """One fenced code block of a Markdown file."""

    path: Path
    line: int                     # 1-based line of the opening fence
    language: str
    code: str
    replacements: list[tuple[str, str]] = field(default_factory=list)

    @property
    def name(self) -> str:
        return f"{self.path.relative_to(ROOT).as_posix()}:{self.line}"


def doc_files() -> list[Path]:
    """README.md and every docs/*.md, found when the tests are collected."""
    return [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]


def parse_blocks(path: Path, text: str) -> tuple[list[Block], list[str]]:
    """The fenced blocks of a Markdown text, and the problems with its test markers."""
    blocks, problems, markers = [], [], []
    lines = text.splitlines()
    i = 0
    while i < len(lines):
        line = lines[i]
        opening = FENCE.match(line)
        if "<!-- test:" in line:
            found = MARKER.match(line)
            if found is None:
                problems.append(f"{path.name}:{i + 1}: malformed marker (want <!-- test: replace \"OLD\" \"NEW\" -->)")
            else:
                markers.append((i + 1, found.group(2), found.group(4)))
            i += 1
            continue
        if markers and opening is None:
            problems.append(f"{path.name}:{markers[0][0]}: a test marker must come right before a code block")
            markers = []
        if opening is None:
            i += 1
            continue
        indent, fence_line, body = len(opening.group(1)), i + 1, []
        i += 1
        while i < len(lines) and not lines[i].strip().startswith("```"):
            body.append(lines[i][indent:] if lines[i][:indent].strip() == "" else lines[i])
            i += 1
        if i == len(lines):
            problems.append(f"{path.name}:{fence_line}: code block never closed")
        blocks.append(Block(path, fence_line, opening.group(2).lower(), "\n".join(body) + "\n",
                            [(old, new) for _, old, new in markers]))
        markers = []
        i += 1
    if markers:
        problems.append(f"{path.name}:{markers[0][0]}: a test marker must come right before a code block")
    return blocks, problems


def _all_blocks() -> list[Block]:
    return [block for path in doc_files() for block in parse_blocks(path, path.read_text(encoding="utf-8"))[0]]


BLOCKS = _all_blocks()


def _case(block: Block):
    return pytest.param(block, id=block.name)


# -- Python ---------------------------------------------------------------------------------------------

def runnable_code(block: Block) -> str:
    """The block's code with its markers' replacements applied (each must match)."""
    code = block.code
    for old, new in block.replacements:
        if old not in code:
            pytest.fail(f"{block.name}: test marker replaces {old!r}, which the block does not contain")
        code = code.replace(old, new)
    return code


@dataclass
class _Session:
    """The shared namespace of one Markdown file's Python blocks."""

    workdir: Path
    namespace: dict = field(default_factory=lambda: {"__name__": "__doc_example__"})
    done: set[int] = field(default_factory=set)
    failed: str | None = None


_SESSIONS: dict[Path, _Session] = {}


def _run(block: Block, session: _Session) -> None:
    # Leading newlines make tracebacks show the Markdown file's own line numbers.
    code = compile("\n" * block.line + runnable_code(block), str(block.path), "exec")
    try:
        exec(code, session.namespace)
    except BaseException:
        session.failed = block.name
        raise
    finally:
        session.done.add(block.line)


@pytest.fixture
def on_the_cpu(monkeypatch):
    """Examples run on the CPU even where a GPU is present ("auto" devices resolve to the CPU)."""
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)


@pytest.mark.parametrize("block", [_case(b) for b in BLOCKS if b.language in PYTHON])
def test_python_example_runs(block, tmp_path_factory, monkeypatch, on_the_cpu):
    session = _SESSIONS.get(block.path)
    if session is None:
        session = _SESSIONS[block.path] = _Session(tmp_path_factory.mktemp(block.path.stem))
    monkeypatch.chdir(session.workdir)
    earlier = [b for b in BLOCKS if b.path == block.path and b.language in PYTHON and b.line < block.line]
    for previous in earlier:  # normally already run by their own cases; not when one case is picked alone
        if session.failed is None and previous.line not in session.done:
            _run(previous, session)
    if session.failed is not None:
        pytest.skip(f"an earlier block of this file failed: {session.failed}")
    _run(block, session)


# -- shell ----------------------------------------------------------------------------------------------

def shell_commands(block: Block) -> list[list[str]]:
    """The commands of a shell block as word lists (comments, prompts, redirections and output dropped)."""
    lines = block.code.splitlines()
    if block.language == "console":  # only prompt lines are commands
        lines = [line[2:] for line in lines if line.startswith("$ ")]
    commands = []
    for line in re.sub(r"\\\n", " ", "\n".join(lines)).splitlines():
        line = re.sub(r"(?<=\s)\d(?=>)", "", line)  # `2>&1` -> `>&1`
        lexer = shlex.shlex(line, posix=True, punctuation_chars=True)
        lexer.whitespace_split = True
        command: list[str] = []
        tokens = iter(lexer)
        for token in tokens:
            if token in SEPARATORS:
                commands.append(command)
                command = []
            elif token in REDIRECTS:
                next(tokens, None)
            else:
                command.append(token)
        commands.append(command)
    return [c for c in commands if c]


def ddfast_arguments(words: list[str]) -> list[str] | None:
    """The arguments of a ``ddfast ...``, ``python -m ddfast ...`` or ``torchrun ... -m ddfast ...`` command."""
    if words[0] == "ddfast":
        return words[1:]
    if words[0] in LAUNCHERS:
        for i in range(1, len(words) - 1):
            if words[i:i + 2] == ["-m", "ddfast"]:
                return words[i + 2:]
    return None


def check_ddfast_command(argv: list[str]) -> str | None:
    """None when ``ddfast argv`` parses (and names a real preset); otherwise what is wrong."""
    err = io.StringIO()
    try:
        with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
            args = build_parser().parse_args(argv)
    except SystemExit as stop:
        return None if stop.code == 0 else err.getvalue().strip() or f"exit status {stop.code}"
    preset = getattr(args, "preset", None)
    if isinstance(preset, str) and preset not in PRESETS:
        return f"unknown preset {preset!r}"
    return None


@pytest.mark.parametrize("block", [_case(b) for b in BLOCKS if b.language in SHELL])
def test_shell_example_parses(block):
    problems = []
    for words in shell_commands(block):
        argv = ddfast_arguments(words)
        if argv is not None:
            problem = check_ddfast_command(argv)
            if problem:
                problems.append(f"`{shlex.join(words)}`: {problem}")
        elif not any(tuple(words[:len(known)]) == known for known in SETUP_COMMANDS):
            problems.append(f"`{shlex.join(words)}` is neither a ddfast command nor in SETUP_COMMANDS")
    assert not problems, f"{block.name}:\n" + "\n".join(problems)


# -- the collection itself ---------------------------------------------------------------------------

def test_markers_are_well_formed():
    problems = [p for path in doc_files() for p in parse_blocks(path, path.read_text(encoding="utf-8"))[1]]
    assert not problems, "\n".join(problems)


def test_the_docs_have_examples_of_every_kind():
    kinds = {b.language for b in BLOCKS}
    assert {"python", "bash"} <= kinds and any(b.path.parent.name == "docs" for b in BLOCKS)


def test_parser_finds_blocks_markers_and_mistakes(tmp_path):
    text = ("# t\n\n"
            "<!-- test: replace \"n=1000\" \"n=2\" -->\n"
            "<!-- test: replace 'f(\"a\")' \"f('b')\" -->\n"
            "```python\nx = dict(n=1000)\n```\n\n"
            "  ```bash\n  ddfast info a.ddf\n  ```\n"
            "<!-- test: replace \"a\" \"b\" -->\n\ntext\n"
            "<!-- test: replce \"a\" \"b\" -->\n```\nplain\n```\n")
    blocks, problems = parse_blocks(tmp_path / "t.md", text)
    assert [(b.line, b.language, b.code, b.replacements) for b in blocks] == [
        (5, "python", "x = dict(n=1000)\n", [("n=1000", "n=2"), ('f("a")', "f('b')")]),
        (9, "bash", "ddfast info a.ddf\n", []),
        (16, "", "plain\n", []),
    ]
    assert problems == ["t.md:12: a test marker must come right before a code block",
                        "t.md:15: malformed marker (want <!-- test: replace \"OLD\" \"NEW\" -->)"]


def test_shell_checks_catch_unknown_commands_flags_and_presets(tmp_path):
    block = Block(tmp_path / "t.md", 1, "bash",
                  "python3 -m venv .venv && source .venv/bin/activate   # setup\n"
                  "ddfast distill --preset fashion-mnist-dm-2kb \\\n  --out runs/x --resume\n")
    assert shell_commands(block) == [["python3", "-m", "venv", ".venv"], ["source", ".venv/bin/activate"],
                                      ["ddfast", "distill", "--preset", "fashion-mnist-dm-2kb", "--out", "runs/x",
                                       "--resume"]]
    assert ddfast_arguments(["torchrun", "--nproc-per-node", "2", "-m", "ddfast", "info", "x"]) == ["info", "x"]
    assert ddfast_arguments(["python", "-m", "pytest"]) is None
    assert check_ddfast_command(["info", "a.ddf", "--json"]) is None
    assert check_ddfast_command(["--help"]) is None
    assert "invalid choice: 'unzip'" in check_ddfast_command(["unzip", "a.ddf"])
    assert "unrecognized arguments: --fast" in check_ddfast_command(["info", "a.ddf", "--fast"])
    assert check_ddfast_command(["distill", "--preset", "no-such", "--out", "x"]) == "unknown preset 'no-such'"
    console = Block(tmp_path / "t.md", 1, "console", "$ ddfast presets > all.txt 2>&1\nbundled-dm-demo ...\n")
    assert shell_commands(console) == [["ddfast", "presets"]]
    piped = Block(tmp_path / "t.md", 1, "sh", "ddfast info a.ddf --json 2>/dev/null | head -n 3 >> out.txt\n")
    assert shell_commands(piped) == [["ddfast", "info", "a.ddf", "--json"], ["head", "-n", "3"]]
