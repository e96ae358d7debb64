"""The Go text/template subset used by --format and inspect -f."""

from __future__ import annotations

import pytest

from dockyard.cli.template import Template, TemplateError

DATA = {
    "Name": "/web",
    "State": {"Status": "running", "Pid": 42, "Running": True},
    "Config": {"Labels": {"a": "1", "b": "x y"}, "Env": ["A=1", "B=2"], "Cmd": None},
    "Mounts": [{"Source": "/s1", "Destination": "/d1"}, {"Source": "/s2", "Destination": "/d2"}],
    "Args": ["-c", "echo hi"],
}


@pytest.mark.parametrize("source, expected", [
    ("{{.Name}}", "/web"),
    ("{{.State.Status}}", "running"),
    ("{{.State.Pid}}", "42"),
    ("{{.State.Running}}", "true"),
    ("{{json .Config.Labels}}", '{"a":"1","b":"x y"}'),
    ("{{json .Config.Cmd}}", "null"),
    ("{{.State | json}}", '{"Status":"running","Pid":42,"Running":true}'),
    ('{{index .Config.Labels "b"}}', "x y"),
    ('{{index .Mounts 1 "Source"}}', "/s2"),
    ("{{range .Mounts}}{{.Source}}->{{.Destination}};{{end}}", "/s1->/d1;/s2->/d2;"),
    ("{{range $i, $m := .Mounts}}{{$i}}={{$m.Source}} {{end}}", "0=/s1 1=/s2 "),
    ("{{range $k, $v := .Config.Labels}}{{$k}}:{{$v}},{{end}}", "a:1,b:x y,"),
    ('{{if eq .State.Status "running"}}up{{else}}down{{end}}', "up"),
    ('{{if .Missing}}a{{else if .State.Running}}b{{else}}c{{end}}', "b"),
    ("{{if not .State.Running}}x{{end}}", ""),
    ("{{with .State}}{{.Pid}}{{end}}", "42"),
    ("{{upper .Name}}|{{lower \"AbC\"}}", "/WEB|abc"),
    ('{{join .Args ","}}', "-c,echo hi"),
    ('{{join .Config.Env " "}}', "A=1 B=2"),
    ("{{len .Mounts}}", "2"),
    ("{{println .Name}}", "/web\n"),
    ('{{printf "%s has %d" .Name .State.Pid}}', "/web has 42"),
    ("{{.Nope}}", "<no value>"),
    ("{{.Config.Cmd}}", "<nil>"),
    ("{{.Config.Env}}", "[A=1 B=2]"),
    ("{{.Config.Labels}}", "map[a:1 b:x y]"),
    ("{{$x := .State.Pid}}pid={{$x}}", "pid=42"),
    ("{{(index .Mounts 0).Source}}", "/s1"),
    ("a {{- .Name -}} b", "a/webb"),
    ("{{/* a comment */}}ok", "ok"),
    ("{{range .Config.Cmd}}x{{else}}empty{{end}}", "empty"),
    ('{{split "a:b" ":"}}', "[a b]"),
    ("{{title \"hello world\"}}", "Hello World"),
    ('{{if and .State.Running (eq .Name "/web")}}yes{{end}}', "yes"),
    ('{{or .Nope "dflt"}}', "dflt"),
])
def test_render(source: str, expected: str) -> None:
    assert Template(source).render(DATA) == expected


class Row:
    def ID(self) -> str:
        return "abc"

    def Label(self, name: str) -> str:
        return {"k": "v"}.get(name, "")

    def __json__(self) -> dict[str, str]:
        return {"ID": "abc"}


def test_methods_with_arguments_and_json() -> None:
    assert Template('{{.ID}} {{.Label "k"}}').render(Row()) == "abc v"
    assert Template("{{json .}}").render(Row()) == '{"ID":"abc"}'


@pytest.mark.parametrize("source", ["{{.Name", "{{if .Name}}x", "{{nosuchfunc .Name}}", "{{end}}"])
def test_errors(source: str) -> None:
    with pytest.raises(TemplateError):
        Template(source).render(DATA)


def test_unknown_field_on_object_is_an_error() -> None:
    with pytest.raises(TemplateError, match="can't evaluate field Foo"):
        Template("{{.Foo}}").render(Row())
