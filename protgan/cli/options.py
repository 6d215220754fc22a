"""Typer options generated from config dataclasses (protgan.core.options.option field metadata).

A command declares only what is its own; every config field becomes an option with the field's
default, help text, CLI name and choices:

    @app.command("synth")
    @with_config(SynthConfig)
    def synth(opts: Opts) -> None:
        cfg = opts.build(SynthConfig)

Types: int, float, str, bool (`--flag`, or `--x/--no-x` when the default is True or the field names
both), Optional[...] of those (an Optional number also takes `none`), list/tuple fields as one comma
list (`--diffaug color,cutout`) or, with `multiple=True`, a repeatable option. `argument=True` makes
a positional argument. Choices are shown in --help and checked by the config (one message per option,
the same whether the config comes from the CLI or from Python).
"""

from __future__ import annotations

import dataclasses
import functools
import inspect
import typing
from typing import Any, Callable, List, Optional, Sequence

import typer

from protgan.core.options import option_meta

_SCALARS = (int, float, str, bool)


@dataclasses.dataclass(frozen=True)
class FieldSpec:
    """How one config field appears on the command line."""

    name: str
    base: type  # int, float, str or bool: the type of one value
    container: type | None  # list or tuple for sequence fields, else None
    optional: bool  # None is a value (Optional[...] or no default given on the CLI)
    default: Any
    meta: dict[str, Any]


def _unwrap(hint: Any) -> tuple[Any, bool]:
    """(the type inside Optional[...], whether None is allowed)."""
    if typing.get_origin(hint) in (typing.Union, getattr(__import__("types"), "UnionType", typing.Union)):
        args = [a for a in typing.get_args(hint) if a is not type(None)]
        if len(args) == 1 and len(typing.get_args(hint)) == 2:
            return args[0], True
    return hint, False


def field_specs(cls: type, exclude: Sequence[str] = (), optional: Sequence[str] = ()) -> list[FieldSpec]:
    """The CLI fields of a config class, in declaration order (fields with `cli=None` left out)."""
    hints = typing.get_type_hints(cls)
    specs = []
    unknown = set(exclude) | set(optional)
    for f in dataclasses.fields(cls):
        unknown.discard(f.name)
        meta = option_meta(f)
        if not meta["cli"] or f.name in exclude:
            continue
        inner, is_optional = _unwrap(hints[f.name])
        container = None
        if typing.get_origin(inner) in (list, tuple):
            container = typing.get_origin(inner)
            inner = typing.get_args(inner)[0] if typing.get_args(inner) else str
        if inner not in _SCALARS:
            raise TypeError(f"{cls.__name__}.{f.name}: type {hints[f.name]!r} has no CLI form")
        if f.default is not dataclasses.MISSING:
            default = f.default
        elif f.default_factory is not dataclasses.MISSING:  # type: ignore[misc]
            default = f.default_factory()  # type: ignore[misc]
        else:
            default = ...  # required
        if f.name in optional:
            is_optional, default = True, None
        specs.append(FieldSpec(f.name, inner, container, is_optional or default is None, default, meta))
    if unknown:
        raise TypeError(f"{cls.__name__}: no fields {sorted(unknown)}")
    return specs


def field_help(cls: type, name: str) -> str:
    """The help text of one field (for a command's own option that stands for it, e.g. train-gan --class)."""
    return option_meta({f.name: f for f in dataclasses.fields(cls)}[name])["help"]


def _flag_names(spec: FieldSpec) -> list[str]:
    cli = spec.meta["cli"]
    names = (cli.split() if isinstance(cli, str) else ["--" + spec.name.replace("_", "-")])
    if spec.base is bool and spec.container is None and "/" not in names[0] and (spec.default is True or spec.optional):
        names[0] = f"{names[0]}/--no-{names[0][2:]}"
    return names


def _parse_optional_number(kind: type) -> Callable[[str], Any]:
    def parse(text: str) -> Any:
        if isinstance(text, str) and text.strip().lower() == "none":
            return None
        return kind(text)  # ValueError -> a one-line usage error
    parse.__name__ = kind.__name__
    return parse


def _parameter(spec: FieldSpec) -> tuple[inspect.Parameter, Any]:
    """(the function parameter typer reads, its annotation) for one field."""
    meta = spec.meta
    help_text = meta["help"]
    kwargs: dict[str, Any] = {"help": help_text, "hidden": meta["hidden"]}
    if meta["choices"]:
        kwargs["metavar"] = "[" + "|".join(meta["choices"]) + "]"
    default = spec.default
    parser = None
    if spec.container is not None and meta["multiple"]:
        annotation: Any = Optional[List[spec.base]]  # type: ignore[name-defined]
        default = None if default is ... or not default else list(default)
    elif spec.container is not None:  # one comma list
        annotation = Optional[str] if spec.optional else str
        if default not in (..., None):
            default = ",".join(str(v) for v in default)
    else:
        annotation = Optional[spec.base] if spec.optional else spec.base
        if spec.optional and spec.base in (int, float):
            parser = _parse_optional_number(spec.base)
            kwargs["metavar"] = kwargs.get("metavar", spec.base.__name__.upper())
    if parser is not None:
        kwargs["parser"] = parser
    if meta["argument"]:
        kwargs.setdefault("metavar", spec.name.upper())
        info = typer.Argument(default, **kwargs)
    else:
        info = typer.Option(default, *_flag_names(spec), **kwargs)
    return inspect.Parameter(spec.name, inspect.Parameter.KEYWORD_ONLY, default=info, annotation=annotation), annotation


def _convert(spec: FieldSpec, value: Any) -> Any:
    """A parsed CLI value -> the field's type (comma lists split)."""
    if spec.container is None:
        return value
    if value is None:  # a repeatable option given no times: the field's empty list (unless None is its default)
        return None if spec.default is None or not spec.meta["multiple"] else spec.container()
    if spec.meta["multiple"]:
        items = list(value)
    else:
        items = [v.strip() for v in str(value).split(",") if v.strip()]
    return spec.container(spec.base(v) for v in items)


class Opts(dict):
    """The generated options' values by field name; `build(Cls, **extra)` makes a config from them."""

    def build(self, cls: type, **extra: Any) -> Any:
        names = {f.name for f in dataclasses.fields(cls)}
        values = {k: v for k, v in self.items() if k in names}
        values.update(extra)
        return cls(**values)


def with_config(*configs: type | tuple[type, dict[str, Any]]) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """Decorator: the command gets its own parameters plus one option per field of each config.

    Each config is a class or (class, {"exclude": [...], "optional": [...]}): excluded fields are
    left to the command, optional ones become options that may be left out (the command checks them).
    The function receives its own parameters and `opts: Opts`.
    """
    specs: list[FieldSpec] = []
    for entry in configs:
        cls, kw = entry if isinstance(entry, tuple) else (entry, {})
        for s in field_specs(cls, **kw):
            if any(s.name == t.name for t in specs):
                continue  # a field shared by two configs (e.g. seed): one option
            specs.append(s)

    def decorate(fn: Callable[..., Any]) -> Callable[..., Any]:
        own = inspect.signature(fn, eval_str=True)
        own_params = [p for name, p in own.parameters.items() if name != "opts"]
        clash = {p.name for p in own_params} & {s.name for s in specs}
        if clash:
            raise TypeError(f"{fn.__name__}: parameters {sorted(clash)} are also config fields (exclude them)")
        generated = [_parameter(s) for s in specs]
        # positional arguments first (in their order), then the command's own options, then the config's
        arguments = [p for p, _ in generated if isinstance(p.default, typer.models.ArgumentInfo)]
        options = [p for p, _ in generated if not isinstance(p.default, typer.models.ArgumentInfo)]
        own_arguments = [p for p in own_params if isinstance(p.default, typer.models.ArgumentInfo)]
        own_rest = [p for p in own_params if p not in own_arguments]
        params = [p.replace(kind=inspect.Parameter.KEYWORD_ONLY) for p in own_arguments] + arguments + \
                 [p.replace(kind=inspect.Parameter.KEYWORD_ONLY) for p in own_rest] + options
        by_name = {s.name: s for s in specs}

        @functools.wraps(fn)
        def command(**kwargs: Any) -> Any:
            opts = Opts({name: _convert(by_name[name], kwargs.pop(name)) for name in list(kwargs) if name in by_name})
            return fn(**kwargs, opts=opts)

        del command.__wrapped__  # typer must read the generated signature, not fn's
        command.__signature__ = inspect.Signature(params)  # type: ignore[attr-defined]
        command.__annotations__ = {p.name: p.annotation for p in params}
        return command

    return decorate
