"""The subset of Go's text/template that ``--format`` and ``inspect -f`` users really write.

Supported: text and ``{{ }}`` actions with ``{{-``/``-}}`` trimming, comments, field chains
(``.A.B``, ``$x.A``), method-style fields with arguments (``{{.Label "k"}}``), variables
(``$``, ``$x := ...``), pipelines (``{{.X | json}}``), parenthesised pipelines, string/raw
string/number/bool/nil literals, ``if``/``else if``/``else``/``end``, ``range`` (with
``$i, $v :=``), ``with``, Go's builtins (and, or, not, len, index, slice, print, printf,
println, eq, ne, lt, le, gt, ge, urlquery) and docker's (json, join, split, title, lower, upper,
pad, truncate). Values print as Go's ``fmt`` prints them (maps as ``map[k:v]``, slices as
``[a b]``, a missing map key as ``<no value>``).

Data is plain decoded JSON or objects; an object exposes template fields as attributes (a
callable attribute is a method) and may define ``__json__()`` for ``{{json .}}``.
"""

from __future__ import annotations

import json
import re
TYPE_CHECKING = False  # typing costs ~4 ms of start-up; these names are for annotations only
if TYPE_CHECKING:
    from typing import Any, Callable


class TemplateError(Exception):
    pass


class _Missing:
    """A map key that is not there: Go prints ``<no value>``."""

    def __repr__(self) -> str:
        return "<no value>"

    def __bool__(self) -> bool:
        return False


MISSING = _Missing()


# ---------------------------------------------------------------------------------------------
# Lexing: split into text and action tokens, then tokenise each action.

_ACTION = re.compile(r"\{\{(-\s)?(.*?)(\s-)?\}\}", re.S)
_TOKEN = re.compile(r"""
    (?P<ws>\s+)
  | (?P<string>"(?:[^"\\]|\\.)*")
  | (?P<raw>`[^`]*`)
  | (?P<char>'(?:[^'\\]|\\.)+')
  | (?P<decl>:=)
  | (?P<assign>=)
  | (?P<number>[-+]?(?:0x[0-9a-fA-F]+|\d+\.\d*(?:[eE][-+]?\d+)?|\.\d+(?:[eE][-+]?\d+)?|\d+(?:[eE][-+]?\d+)?))
  | (?P<field>(?:\.[A-Za-z_][A-Za-z0-9_]*)+|\.)
  | (?P<var>\$[A-Za-z0-9_]*)
  | (?P<ident>[A-Za-z_][A-Za-z0-9_]*)
  | (?P<pipe>\|)
  | (?P<lparen>\()
  | (?P<rparen>\))
  | (?P<comma>,)
""", re.X)
_CHAIN = re.compile(r"(?:\.[A-Za-z_][A-Za-z0-9_]*)+")


def _tokenize(src: str) -> list[tuple[str, str]]:
    tokens: list[tuple[str, str]] = []
    pos = 0
    while pos < len(src):
        m = _TOKEN.match(src, pos)
        if not m:
            raise TemplateError(f"template: :1: unexpected {src[pos]!r} in command")
        kind = m.lastgroup
        text = m.group()
        pos = m.end()
        if kind == "ws":
            continue
        # a field chain may follow a variable or a closing paren directly: $x.A, (..).B
        if kind == "field" and tokens and tokens[-1][0] in ("var", "rparen") and src[m.start() - 1] not in " \t\n":
            kind = "chain"
        tokens.append((kind, text))
    return tokens


# ---------------------------------------------------------------------------------------------
# AST


class _Node:
    """AST base: plain classes with slots (dataclasses would cost start-up time on every command)."""

    __slots__: tuple[str, ...] = ()

    def __init__(self, *values: Any) -> None:
        for name, value in zip(self.__slots__, values):
            setattr(self, name, value)


class Operand(_Node):
    __slots__ = ("kind", "value", "chain")  # kind: field | var | literal | pipeline | ident

    def __init__(self, kind: str, value: Any) -> None:
        super().__init__(kind, value, [])  # chain: fields applied after a variable or (pipeline)


class Command(_Node):
    __slots__ = ("args",)


class Pipeline(_Node):
    __slots__ = ("commands", "decl", "assign")  # decl: variables declared with := (or = when assign)

    def __init__(self, commands: list[Command], decl: list[str] | None = None, assign: bool = False) -> None:
        super().__init__(commands, decl or [], assign)


class Text(_Node):
    __slots__ = ("text",)


class Action(_Node):
    __slots__ = ("pipe",)


class Branch(_Node):
    __slots__ = ("kind", "pipe", "body", "else_body")  # kind: if | range | with


class _Parser:
    def __init__(self, src: str) -> None:
        self.items = self._split(src)
        self.pos = 0

    @staticmethod
    def _split(src: str) -> list[tuple[str, Any]]:
        items: list[tuple[str, Any]] = []
        pos = 0
        trim_next = False
        for m in _ACTION.finditer(src):
            text = src[pos:m.start()]
            if trim_next:
                text = text.lstrip()
            if m.group(1):
                text = text.rstrip()
            if text:
                items.append(("text", text))
            trim_next = bool(m.group(3))
            body = m.group(2).strip()
            if body.startswith("/*"):
                if not body.endswith("*/"):
                    raise TemplateError("template: :1: unclosed comment")
            else:
                items.append(("action", body))
            pos = m.end()
        text = src[pos:]
        if "{{" in text:
            raise TemplateError("template: :1: unclosed action")
        if trim_next:
            text = text.lstrip()
        if text:
            items.append(("text", text))
        return items

    def parse(self) -> list[Any]:
        nodes, stop = self._list()
        if stop is not None:
            raise TemplateError(f"template: :1: unexpected {{{{{stop}}}}}")
        return nodes

    def _list(self) -> tuple[list[Any], str | None]:
        nodes: list[Any] = []
        while self.pos < len(self.items):
            kind, body = self.items[self.pos]
            self.pos += 1
            if kind == "text":
                nodes.append(Text(body))
                continue
            word = body.split(None, 1)[0] if body else ""
            if word in ("end", "else"):
                return nodes, body
            if word in ("if", "range", "with"):
                nodes.append(self._branch(word, body[len(word):]))
            elif word in ("define", "template", "block", "break", "continue"):
                raise TemplateError(f"template: :1: {{{{{word}}}}} is not supported")
            else:
                nodes.append(Action(_parse_pipeline(_tokenize(body))))
        return nodes, None

    def _branch(self, kind: str, rest: str) -> Branch:
        pipe = _parse_pipeline(_tokenize(rest))
        body, stop = self._list()
        if stop is None:
            raise TemplateError(f"template: :1: unexpected EOF in {kind}")
        else_body = None
        if stop != "end":
            after = stop[len("else"):].strip()
            if after.startswith("if ") and kind == "if":
                # else if X: an if nested in the else branch that shares our {{end}}
                self.pos -= 1
                self.items[self.pos] = ("action", after)
                else_body = [self._nested_else_if()]
            elif after:
                raise TemplateError(f"template: :1: unexpected {after!r} after else")
            else:
                else_body, stop = self._list()
                if stop != "end":
                    raise TemplateError(f"template: :1: expected end; found {stop}")
        return Branch(kind, pipe, body, else_body)

    def _nested_else_if(self) -> Branch:
        _, body = self.items[self.pos]
        self.pos += 1
        return self._branch("if", body[len("if"):])


def _parse_pipeline(tokens: list[tuple[str, str]]) -> Pipeline:
    decl: list[str] = []
    assign = False
    # "$x := ..." or "$i, $v := ..."
    for i, (kind, _) in enumerate(tokens):
        if kind in ("decl", "assign"):
            names = [t for k, t in tokens[:i] if k == "var"]
            if names and all(k in ("var", "comma") for k, _ in tokens[:i]):
                decl = names
                assign = kind == "assign"
                tokens = tokens[i + 1:]
            break
    commands: list[Command] = []
    pos = 0
    while True:
        args, pos = _parse_command(tokens, pos)
        if not args:
            raise TemplateError("template: :1: missing value for command")
        commands.append(Command(args))
        if pos >= len(tokens):
            break
        if tokens[pos][0] != "pipe":
            raise TemplateError(f"template: :1: unexpected {tokens[pos][1]!r} in command")
        pos += 1
    return Pipeline(commands, decl, assign)


def _parse_command(tokens: list[tuple[str, str]], pos: int) -> tuple[list[Operand], int]:
    args: list[Operand] = []
    while pos < len(tokens):
        kind, text = tokens[pos]
        if kind in ("pipe", "rparen"):
            break
        pos += 1
        if kind == "field":
            args.append(Operand("field", [] if text == "." else text[1:].split(".")))
        elif kind == "var":
            args.append(Operand("var", text))
        elif kind == "string":
            args.append(Operand("literal", json.loads(text)))
        elif kind == "raw":
            args.append(Operand("literal", text[1:-1]))
        elif kind == "char":
            args.append(Operand("literal", ord(text[1:-1].encode().decode("unicode_escape"))))
        elif kind == "number":
            num: Any = int(text, 0) if re.fullmatch(r"[-+]?(0x[0-9a-fA-F]+|\d+)", text) else float(text)
            args.append(Operand("literal", num))
        elif kind == "ident":
            if text in ("true", "false"):
                args.append(Operand("literal", text == "true"))
            elif text == "nil":
                args.append(Operand("literal", None))
            else:
                args.append(Operand("ident", text))
        elif kind == "lparen":
            depth, end = 1, pos
            while end < len(tokens) and depth:
                depth += {"lparen": 1, "rparen": -1}.get(tokens[end][0], 0)
                end += 1
            if depth:
                raise TemplateError("template: :1: unclosed left paren")
            args.append(Operand("pipeline", _parse_pipeline(tokens[pos:end - 1])))
            pos = end
        elif kind == "chain":
            if not args:
                raise TemplateError(f"template: :1: unexpected {text!r}")
            args[-1].chain.extend(text[1:].split("."))
        else:
            raise TemplateError(f"template: :1: unexpected {text!r} in command")
    return args, pos


# ---------------------------------------------------------------------------------------------
# Printing values as Go's fmt does


def go_str(value: Any) -> str:
    if value is MISSING:
        return "<no value>"
    if value is None:
        return "<nil>"
    if value is True:
        return "true"
    if value is False:
        return "false"
    if isinstance(value, float):
        if value.is_integer() and abs(value) < 1e21:
            return str(int(value))
        return repr(value)
    if isinstance(value, str):
        return value
    if isinstance(value, dict):
        return "map[" + " ".join(f"{go_str(k)}:{go_str(v)}" for k, v in sorted(value.items())) + "]"
    if isinstance(value, (list, tuple)):
        return "[" + " ".join(go_str(v) for v in value) + "]"
    return str(value)


def truth(value: Any) -> bool:
    if value is MISSING or value is None:
        return False
    if isinstance(value, (bool, int, float, str, list, tuple, dict)):
        return bool(value)
    return True


def to_jsonable(value: Any) -> Any:
    if hasattr(value, "__json__"):
        return value.__json__()
    if value is MISSING:
        return None
    return value


# API fields that are Go maps: encoding/json writes their keys sorted (struct fields keep their order)
_MAP_FIELDS = frozenset({"Labels", "Options", "Annotations", "ExposedPorts", "Volumes", "PortBindings", "Ports",
                         "Networks", "EndpointsConfig", "Sysctls", "Tmpfs", "StorageOpt", "DriverOpts",
                         "Config", "Runtimes", "Plugins"})


def go_maps(value: Any, key: str = "") -> Any:
    """Decoded API JSON with the Go-map fields' keys sorted, as the docker CLI's typed structs print."""
    if isinstance(value, dict):
        items = sorted(value.items()) if key in _MAP_FIELDS and not _is_struct(value) else value.items()
        return {k: go_maps(v, k) for k, v in items}
    if isinstance(value, list):
        return [go_maps(v) for v in value]
    return value


def _is_struct(value: dict[str, Any]) -> bool:
    # "Config" is a struct in container/image inspect but a map in LogConfig and IPAM entries
    return any(k in value for k in ("Image", "Cmd", "Env", "Subnet", "Hostname"))


def _json(value: Any) -> str:
    text = json.dumps(to_jsonable(value), separators=(",", ":"), ensure_ascii=False, default=to_jsonable)
    if hasattr(value, "__json__"):
        # docker's row contexts marshal themselves with json.Marshal, which escapes HTML characters
        text = text.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")
    return text.replace("\u2028", "\\u2028").replace("\u2029", "\\u2029")


def _index(item: Any, *keys: Any) -> Any:
    for key in keys:
        if isinstance(item, dict):
            item = item.get(key, MISSING)
        elif isinstance(item, (list, tuple, str)):
            try:
                item = item[int(key)]
            except (IndexError, ValueError):
                raise TemplateError(f"error calling index: index out of range: {key}") from None
        elif item is None or item is MISSING:
            raise TemplateError("error calling index: index of untyped nil")
        else:
            raise TemplateError(f"error calling index: can't index item of type {type(item).__name__}")
    return item


def _length(item: Any) -> int:
    try:
        return len(item)
    except TypeError:
        raise TemplateError(f"error calling len: len of type {type(item).__name__}") from None


def _printf(fmt: str, *args: Any) -> str:
    def conv(m: re.Match[str]) -> str:
        return "%" + m.group(1) + {"v": "s", "q": "r", "t": "s"}.get(m.group(2), m.group(2))

    pyfmt = re.sub(r"%([-+# 0]*\d*(?:\.\d+)?)([vsdqtfxXeEgGo%])", conv, fmt)
    conv_args = []
    for a in args:
        conv_args.append(go_str(a) if isinstance(a, (bool, dict, list, type(None), _Missing)) else a)
    try:
        return pyfmt % tuple(conv_args)
    except (TypeError, ValueError) as e:
        raise TemplateError(f"error calling printf: {e}") from None


def _go_print(*args: Any) -> str:
    # Go's Sprint adds spaces only between operands when neither is a string
    out = ""
    for i, a in enumerate(args):
        if i and not isinstance(a, str) and not isinstance(args[i - 1], str):
            out += " "
        out += go_str(a)
    return out


def _truncate(s: str, n: int) -> str:
    return s[:n] if len(s) > n else s


def _compare(op: Callable[[Any, Any], bool]) -> Callable[..., bool]:
    def fn(a: Any, *bs: Any) -> bool:
        return any(op(a, b) for b in bs) if op is _eq else op(a, bs[0])
    return fn


def _eq(a: Any, b: Any) -> bool:
    return a == b


def _split(s: str, sep: str) -> list[str]:
    return s.split(sep) if sep else list(s)


def _urlquery(*args: Any) -> str:
    from urllib.parse import quote_plus
    return quote_plus(_go_print(*args))


FUNCS: dict[str, Callable[..., Any]] = {
    "json": _json,
    "join": lambda items, sep: sep.join(go_str(i) for i in items or []),
    "split": _split,
    "title": lambda s: s.title(),
    "lower": lambda s: go_str(s).lower(),
    "upper": lambda s: go_str(s).upper(),
    "pad": lambda s, prefix, suffix: " " * prefix + go_str(s) + " " * suffix,
    "truncate": _truncate,
    "len": _length,
    "index": _index,
    "slice": lambda item, *idx: item[slice(*idx)],
    "print": _go_print,
    "println": lambda *args: " ".join(go_str(a) for a in args) + "\n",
    "printf": _printf,
    "not": lambda a: not truth(a),
    "eq": _compare(_eq),
    "ne": _compare(lambda a, b: a != b),
    "lt": _compare(lambda a, b: a < b),
    "le": _compare(lambda a, b: a <= b),
    "gt": _compare(lambda a, b: a > b),
    "ge": _compare(lambda a, b: a >= b),
    "urlquery": _urlquery,
}


# ---------------------------------------------------------------------------------------------
# Evaluation


class _State:
    def __init__(self, root: Any) -> None:
        self.scopes: list[dict[str, Any]] = [{"$": root}]
        self.out: list[str] = []

    def lookup(self, name: str) -> Any:
        for scope in reversed(self.scopes):
            if name in scope:
                return scope[name]
        raise TemplateError(f'template: :1: undefined variable "{name}"')

    def set(self, name: str, value: Any, assign: bool) -> None:
        if assign:
            for scope in reversed(self.scopes):
                if name in scope:
                    scope[name] = value
                    return
            raise TemplateError(f'template: :1: undefined variable "{name}"')
        self.scopes[-1][name] = value


def _field(value: Any, name: str, args: list[Any], is_last: bool) -> Any:
    if isinstance(value, dict):
        if args and is_last:
            raise TemplateError(f"template: :1: can't give argument to non-function .{name}")
        return value.get(name, MISSING)
    if value is None or value is MISSING:
        raise TemplateError(f"template: :1: nil pointer evaluating interface {{}}.{name}")
    attr = getattr(value, name, MISSING) if not name.startswith("_") else MISSING
    if attr is MISSING:
        raise TemplateError(f"template: :1: can't evaluate field {name} in type {type(value).__name__}")
    if callable(attr):
        return attr(*args) if is_last else attr()
    if args and is_last:
        raise TemplateError(f"template: :1: {name} has arguments but cannot be invoked as function")
    return attr


def _walk_chain(value: Any, chain: list[str], args: list[Any]) -> Any:
    for i, name in enumerate(chain):
        value = _field(value, name, args, i == len(chain) - 1)
    return value


def _eval_operand(state: _State, op: Operand, dot: Any) -> Any:
    if op.kind == "field":
        return _walk_chain(dot, op.value, [])
    if op.kind == "var":
        return _walk_chain(state.lookup(op.value), op.chain, [])
    if op.kind == "literal":
        return op.value
    if op.kind == "pipeline":
        return _walk_chain(_eval_pipeline(state, op.value, dot), op.chain, [])
    if op.kind == "ident":
        return _call(op.value, [])
    raise AssertionError(op.kind)


def _call(name: str, args: list[Any]) -> Any:
    if name in ("and", "or"):
        result: Any = None
        for a in args:
            result = a
            if truth(a) != (name == "and"):
                return a
        return result
    fn = FUNCS.get(name)
    if fn is None:
        raise TemplateError(f'template: :1: function "{name}" not defined')
    try:
        return fn(*args)
    except TemplateError:
        raise
    except (TypeError, AttributeError, ValueError) as e:
        raise TemplateError(f"template: :1: error calling {name}: {e}") from None


def _eval_command(state: _State, cmd: Command, dot: Any, piped: Any, has_piped: bool) -> Any:
    head, rest = cmd.args[0], cmd.args[1:]
    args = [_eval_operand(state, a, dot) for a in rest]
    if has_piped:
        args.append(piped)
    if head.kind == "ident":
        return _call(head.value, args)
    if head.kind == "field" and head.value:
        return _walk_chain(dot, head.value, args)
    if head.kind == "var" and head.chain:
        return _walk_chain(state.lookup(head.value), head.chain, args)
    if args:
        raise TemplateError("template: :1: can't give argument to non-function")
    return _eval_operand(state, head, dot)


def _eval_pipeline(state: _State, pipe: Pipeline, dot: Any) -> Any:
    value: Any = None
    for i, cmd in enumerate(pipe.commands):
        value = _eval_command(state, cmd, dot, value, i > 0)
    for name in pipe.decl[:1] if len(pipe.decl) == 1 else []:
        state.set(name, value, pipe.assign)
    return value


def _exec(state: _State, nodes: list[Any], dot: Any) -> None:
    for node in nodes:
        if isinstance(node, Text):
            state.out.append(node.text)
        elif isinstance(node, Action):
            value = _eval_pipeline(state, node.pipe, dot)
            if not node.pipe.decl:
                state.out.append(go_str(value))
        elif node.kind == "if":
            state.scopes.append({})
            cond = _eval_pipeline(state, node.pipe, dot)
            _exec(state, node.body if truth(cond) else node.else_body or [], dot)
            state.scopes.pop()
        elif node.kind == "with":
            state.scopes.append({})
            value = _eval_pipeline(state, node.pipe, dot)
            _exec(state, node.body if truth(value) else node.else_body or [], value if truth(value) else dot)
            state.scopes.pop()
        else:
            _exec_range(state, node, dot)


def _exec_range(state: _State, node: Branch, dot: Any) -> None:
    decl = node.pipe.decl
    pipe = Pipeline(node.pipe.commands)
    state.scopes.append({})
    value = _eval_pipeline(state, pipe, dot)
    if isinstance(value, dict):
        items = [(k, value[k]) for k in sorted(value)]
    elif isinstance(value, (list, tuple)):
        items = list(enumerate(value))
    elif isinstance(value, int) and not isinstance(value, bool):
        items = [(i, i) for i in range(value)]
    elif value is None or value is MISSING:
        items = []
    else:
        raise TemplateError(f"template: :1: range can't iterate over {go_str(value)}")
    if not items:
        _exec(state, node.else_body or [], dot)
    for key, elem in items:
        if len(decl) == 1:
            state.scopes[-1][decl[0]] = elem
        elif len(decl) == 2:
            state.scopes[-1][decl[0]] = key
            state.scopes[-1][decl[1]] = elem
        _exec(state, node.body, elem)
    state.scopes.pop()


class Template:
    def __init__(self, source: str) -> None:
        self.source = source
        self.nodes = _Parser(source).parse()

    def render(self, data: Any) -> str:
        state = _State(data)
        _exec(state, self.nodes, data)
        return "".join(state.out)


def parse(source: str) -> Template:
    return Template(source)
