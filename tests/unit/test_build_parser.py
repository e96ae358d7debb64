"""The Dockerfile parser, word expansion and .dockerignore patterns (no daemon needed)."""

import pytest

from dockyard import errdefs
from dockyard.apitypes import dockerignore
from dockyard.daemon.build import dockerfile, shellwords


def test_instructions_continuations_comments_and_forms():
    doc = dockerfile.parse(
        "# syntax=docker/dockerfile:1\n"
        "FROM busybox AS base\n"
        "# a comment\n"
        "RUN echo a \\\n"
        "  # inside a continuation\n"
        "  && echo b\n"
        "CMD [\"sh\", \"-c\", \"echo hi\"]\n"
        "ENTRYPOINT echo shell form\n"
        "COPY --from=base --chown=1:2 /a /b\n")
    assert doc.directives == {"syntax": "docker/dockerfile:1"}
    cmds = [i.cmd for i in doc.instructions]
    assert cmds == ["from", "run", "cmd", "entrypoint", "copy"]
    run = doc.instructions[1]
    assert run.rest == "echo a   && echo b" and run.line == 4 and run.json is None
    assert doc.instructions[2].json == ["sh", "-c", "echo hi"]
    assert doc.instructions[3].json is None
    copy = doc.instructions[4]
    assert copy.flag("from") == "base" and copy.flag("chown") == "1:2" and copy.rest == "/a /b"


def test_escape_directive_and_backtick_continuation():
    doc = dockerfile.parse("# escape=`\nFROM busybox\nRUN echo a `\n  b\nCOPY c:\\x d\n")
    assert doc.escape == "`"
    assert doc.instructions[1].rest == "echo a   b"


def test_heredocs():
    doc = dockerfile.parse("FROM busybox\nRUN <<EOF\necho one\necho two\nEOF\n"
                           "COPY <<-'END' /f\n\tliteral $x\n\tEND\nCMD true\n")
    run, copy, cmd = doc.instructions[1:]
    assert run.heredocs[0].content == "echo one\necho two\n" and run.heredocs[0].expand
    assert dockerfile.is_heredoc_only(run.rest)
    assert copy.heredocs[0].content == "literal $x\n" and not copy.heredocs[0].expand
    assert cmd.cmd == "cmd"


def test_errors_name_the_line_and_instruction():
    with pytest.raises(errdefs.InvalidParameter, match="line 3: unknown instruction: FOO"):
        dockerfile.parse("FROM busybox\n\nFOO bar\n")
    with pytest.raises(errdefs.InvalidParameter, match="line 2: ENV requires at least one argument"):
        dockerfile.parse("FROM busybox\nENV\n")
    with pytest.raises(errdefs.InvalidParameter, match="line 2: SHELL requires the arguments to be in JSON form"):
        dockerfile.parse("FROM busybox\nSHELL /bin/bash -c\n")
    with pytest.raises(errdefs.InvalidParameter, match="cannot be empty"):
        dockerfile.parse("# only a comment\n")


def test_substitution_forms():
    env = {"a": "1", "empty": ""}
    assert shellwords.expand("${a:-x}-${b:-y}-${empty:-z}-${empty-z}", env) == "1-y-z-"
    assert shellwords.expand("${a:+set}/${b:+set}/${empty+set}", env) == "set//set"
    assert shellwords.expand("$a$b'$a'\"$a\"\\$a", env) == "1$a1$a"
    assert shellwords.words('k="two words" x=$a \'y z\'', env) == ["k=two words", "x=1", "y z"]
    with pytest.raises(errdefs.InvalidParameter):
        shellwords.expand("${b:?must be set}", env)
    with pytest.raises(errdefs.InvalidParameter):
        shellwords.words("'unterminated", env)


@pytest.mark.parametrize("patterns,path,excluded", [
    ("*.log", "x.log", True),
    ("*.log", "dir/x.log", False),
    ("**/*.log", "dir/deep/x.log", True),
    ("dir", "dir/sub/file", True),
    ("dir\n!dir/keep", "dir/keep", False),
    ("dir\n!dir/keep", "dir/other", True),
    ("/abs/../secret", "secret", True),
    ("file?.txt", "file1.txt", True),
    ("file[0-9].txt", "filea.txt", False),
    ("# comment\n\n", "anything", False),
])
def test_dockerignore_semantics(patterns, path, excluded):
    assert dockerignore.excluded(path, dockerignore.parse(patterns)) is excluded


def test_dockerignore_broken_pattern_is_an_error():
    with pytest.raises(errdefs.InvalidParameter, match="Error processing .dockerignore"):
        dockerignore.parse("[unclosed\n")
