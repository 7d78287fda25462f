"""What one template render may cost: characters, seconds and integer size.

Templates come from spec files, and spec files arrive in pull requests from people llmspec does
not trust. jinja2's sandbox keeps a template away from Python's internals, but not from memory
or time: `{{ 'x' * 10**9 }}` allocates a gigabyte, `{{ 7 ** 10**8 }}` multiplies for minutes,
two nested `range` loops run for hours. `BoundedEnvironment` bounds every way a template makes a
value grow (operators, filters, calls, literals, `~` joins), counts every character it outputs
(captured `{% set %}` blocks and macro bodies too) and checks a wall-clock deadline at each of
those steps and at each loop step. So a render ends about when its deadline passes and holds a
few times its size cap at most. A limit reached raises `RenderLimit`, a jinja2 `TemplateError`
that names the limit and its value.

Every value a template builds is sized when it is built (the result of an operator, filter,
call or literal), so any value a render holds is either that small or one of its variables,
which are as large as the data that holds them and no larger.

The cost of a value is its `weight`: characters of a string, slots plus contents of a list or
mapping (keys and values), counted through shared references, so `[s, s, s]` weighs three
times `s` and a tower of lists that share their items weighs what printing it would write.

    >>> weight(["ab", {"c": 1}], limit=100)  # 2 slots + "ab" + 1 slot + "c" + 1
    6
"""

from __future__ import annotations

import itertools
import math
import re
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from contextvars import ContextVar
from dataclasses import dataclass
from typing import Any

from jinja2 import nodes, pass_context
from jinja2.exceptions import SecurityError, TemplateRuntimeError
from jinja2.runtime import Context, Undefined
from jinja2.sandbox import ImmutableSandboxedEnvironment
from jinja2.utils import _PassArg
from jinja2.visitor import NodeTransformer

MAX_RENDER_CHARS = 8 * 1024 * 1024  # a prompt longer than this fits no model's context
MAX_RENDER_SECONDS = 2.0  # a real prompt renders in milliseconds
MAX_INT_BITS = 1 << 16  # far beyond any number a prompt prints (str() stops at 4300 digits)

# Names of the guard filters the renderer inserts into a template's syntax tree. They are not
# identifiers, so no template can name them itself.
OUT, ITER, TEXT, VALUE = "<out>", "<iter>", "<text>", "<value>"


class RenderLimit(TemplateRuntimeError):
    """A render went past one of its limits; `limit` names it ("size", "time", "integer",
    "depth") and `value` is the cap."""

    def __init__(self, limit: str, value: float, message: str):
        self.limit = limit
        self.value = value
        super().__init__(message)


@dataclass(slots=True)
class Budget:
    """The limits of one render and what it has spent. Mutable on purpose: it is the render's
    running account, set for the render's duration only (see `budget`)."""

    max_chars: int = MAX_RENDER_CHARS
    max_seconds: float = math.inf
    deadline: float = math.inf
    produced: int = 0

    def tick(self) -> None:
        if time.monotonic() > self.deadline:
            raise RenderLimit(
                "time",
                self.max_seconds,
                f"template render took longer than {self.max_seconds:g} s, the time cap of a "
                "render: simplify its loops",
            )

    def emit(self, chars: int) -> None:
        self.produced += max(chars, 1)  # empty pieces still cost a list slot each
        if self.produced > self.max_chars:
            raise RenderLimit(
                "size",
                self.max_chars,
                f"template output is longer than {self.max_chars:,} characters, the size cap "
                "of a render",
            )


_NO_BUDGET = Budget()  # outside render_string: size caps only, no deadline, nothing counted
_CURRENT: ContextVar[Budget | None] = ContextVar("llmspec_render_budget", default=None)


def budget() -> ContextVar[Budget | None]:
    """The context variable holding the running render's `Budget` (per thread and task)."""
    return _CURRENT


def _now() -> Budget:
    return _CURRENT.get() or _NO_BUDGET


def _leaf(v: Any) -> int | None:
    """The cost of a value that holds no others; None for a list, tuple or mapping."""
    t = type(v)
    if t is str or t is bytes:
        return len(v)
    if t is int:
        return v.bit_length() // 64
    if t in _SCALARS:
        return 0
    if isinstance(v, Undefined):
        return 1  # never touched: a strict undefined raises on any use
    if isinstance(v, (str, bytes, bytearray)):
        return len(v)
    if isinstance(v, (list, tuple, Mapping)):
        return None
    if isinstance(v, int):
        return v.bit_length() // 64
    return 1


def _children(v: Any) -> Iterator[Any]:
    return itertools.chain(v.keys(), v.values()) if isinstance(v, Mapping) else iter(v)


def weight(value: Any, limit: int) -> int:
    """The cost of a value (see the module docstring), or some number past `limit` once it is
    clear the cost is. Each list or mapping is walked once however often it is referenced, so
    this takes time in the number of distinct values, not in the cost."""
    own = _leaf(value)
    if own is not None:
        return own
    memo: dict[int, int] = {}
    active = {id(value)}
    frames: list[list[Any]] = [[value, _children(value), len(value)]]
    while frames:
        frame = frames[-1]
        for child in frame[1]:
            cost = _leaf(child)
            if cost is None:
                cost = memo.get(id(child))
            if cost is None:
                if id(child) in active:  # a cycle: no template can print it
                    return limit + 1
                active.add(id(child))
                frames.append([child, _children(child), len(child)])
                break
            frame[2] += cost
            if frame[2] > limit:
                return frame[2]
        else:
            frames.pop()
            active.discard(id(frame[0]))
            memo[id(frame[0])] = frame[2]
            if not frames:
                return frame[2]
            frames[-1][2] += frame[2]
            if frames[-1][2] > limit:
                return frames[-1][2]
    return 0  # not reached


_SCALARS = frozenset({float, bool, type(None)})


def _fits(value: Any, what: str) -> Any:
    cap = _now().max_chars
    if weight(value, cap) > cap:
        raise RenderLimit(
            "size", cap, f"{what} is larger than {cap:,} characters, the size cap of a render"
        )
    return value


def _refuse_size(what: str) -> RenderLimit:
    cap = _now().max_chars
    return RenderLimit(
        "size", cap, f"{what} would be larger than {cap:,} characters, the size cap of a render"
    )


def _is_int(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def _check_int_args(what: str, args: Iterable[Any]) -> None:
    """Integers passed to a string or list operation are sizes (widths, counts): bound them."""
    cap = _now().max_chars
    for a in args:
        if _is_int(a) and abs(a) > cap:
            raise _refuse_size(f"{what} with {a:,}")


# -- operators -----------------------------------------------------------------------------

_PERCENT = re.compile(r"%(?:\([^)]*\))?[#0 +\-]*(\*|\d+)?(?:\.(\*|\d*))?")


def percent_cost(fmt: str, args: Any) -> float:
    """An upper estimate of the length of `fmt % args` (widths and precisions included)."""
    cap = _now().max_chars
    cost: float = len(fmt) + weight(args, cap)
    star = False
    for m in _PERCENT.finditer(fmt):
        for g in m.groups():
            if g == "*":
                star = True
            elif g:
                cost += int(g) if len(g) <= 9 else math.inf
    if star:
        items = args if isinstance(args, tuple) else (args,)
        cost += sum(abs(a) for a in items if _is_int(a))
    return cost


def check_binop(operator: str, left: Any, right: Any) -> None:
    """Refuse `*`, `**`, `+` and `%` whose result would pass the caps, before computing it."""
    cap = _now().max_chars
    seqs = (str, bytes, list, tuple)
    if operator == "**":
        if _is_int(left) and _is_int(right) and right > 0 and abs(left) > 1:
            bits = right * math.log2(abs(left))
            if bits > MAX_INT_BITS:
                raise RenderLimit(
                    "integer",
                    MAX_INT_BITS,
                    f"`**` would make an integer of about {bits:,.0f} bits; the cap is "
                    f"{MAX_INT_BITS:,} bits",
                )
    elif operator == "*":
        if isinstance(left, seqs) and _is_int(right) or isinstance(right, seqs) and _is_int(left):
            seq, n = (left, right) if _is_int(right) else (right, left)
            if n > 0 and weight(seq, cap) * n > cap:
                raise _refuse_size(f"`*` by {n:,}")
        elif _is_int(left) and _is_int(right):
            if left.bit_length() + right.bit_length() > MAX_INT_BITS:
                raise RenderLimit(
                    "integer",
                    MAX_INT_BITS,
                    f"`*` would make an integer of more than {MAX_INT_BITS:,} bits",
                )
    elif operator == "+":
        if isinstance(left, seqs) and isinstance(right, seqs):
            if weight(left, cap) + weight(right, cap) > cap:
                raise _refuse_size("the result of `+`")
    elif operator == "%" and isinstance(left, str):
        if percent_cost(left, right) > cap:
            raise _refuse_size("the result of `%`")


# -- filters, tests and calls ------------------------------------------------------------------


def _arg(args: tuple, kwargs: dict, i: int, name: str, default: Any) -> Any:
    if name in kwargs:
        return kwargs[name]
    return args[i] if len(args) > i else default


def _materialize(value: Any) -> list[Any]:
    cap = _now().max_chars
    items = list(itertools.islice(value, cap + 1))
    if len(items) > cap:
        raise _refuse_size("a sequence")
    return items


def _estimate_filter(name: str, value: Any, args: tuple, kwargs: dict) -> tuple[Any, float]:
    """The value to pass on (iterators materialised when they must be measured) and an upper
    estimate of the result's size for the filters whose output can outgrow their input."""
    cap = _now().max_chars
    text = value if isinstance(value, str) else None
    if name == "replace" and text is not None:
        old = str(_arg(args, kwargs, 0, "old", ""))
        new = str(_arg(args, kwargs, 1, "new", ""))
        count = _arg(args, kwargs, 2, "count", None)
        n = text.count(old) if old else len(text) + 1
        if _is_int(count) and count >= 0:
            n = min(n, count)
        return value, len(text) + n * max(0, len(new) - len(old))
    if name == "indent" and text is not None:
        width = _arg(args, kwargs, 0, "width", 4)
        w = width if _is_int(width) else len(str(width))
        return value, len(text) + (text.count("\n") + 1) * w
    if name == "wordwrap" and text is not None:
        width = _arg(args, kwargs, 0, "width", 79)
        wrap = _arg(args, kwargs, 2, "wrapstring", None) or "\n"
        breaks = len(text) // max(1, width if _is_int(width) else 1) + text.count(" ") + 1
        return value, len(text) + (breaks + text.count("\n")) * len(str(wrap))
    if name == "format":
        return value, percent_cost(str(value), kwargs or args)
    if name == "join":
        items = value if isinstance(value, (str, list, tuple)) else _materialize(value)
        sep = str(_arg(args, kwargs, 0, "d", ""))
        return items, weight(items, cap) + len(sep) * len(items)
    if name == "sum":
        start = _arg(args, kwargs, 1, "start", 0)
        if isinstance(start, (int, float)):
            return value, 0
        items = _materialize(value)
        total = weight(start, cap) + weight(items, cap)
        # adding lists or strings one by one copies the running total each time
        if total * len(items) > 16 * cap:
            raise RenderLimit(
                "size",
                16 * cap,
                f"filter `sum` would copy more than {16 * cap:,} values adding {len(items):,} "
                "lists or strings one by one: use `join`, or sum fewer",
            )
        return items, total
    return value, 0


def bounded_filter(name: str, func: Callable[..., Any]) -> Callable[..., Any]:
    """`func` with the deadline, its size arguments and its result's size checked (its input
    needs no check: every value was checked when it was built). The wrapper takes the context,
    which also keeps jinja2 from running it at compile time."""
    pass_arg = _PassArg.from_obj(func)

    @pass_context
    def wrapper(context: Context, value: Any = None, *args: Any, **kwargs: Any) -> Any:
        b = _now()
        b.tick()
        _check_int_args(f"filter `{name}`", itertools.chain(args, kwargs.values()))
        value, estimate = _estimate_filter(name, value, args, kwargs)
        if estimate > b.max_chars:
            raise _refuse_size(f"the output of filter `{name}`")
        lead = {
            _PassArg.context: (context,),
            _PassArg.eval_context: (context.eval_ctx,),
            _PassArg.environment: (context.environment,),
        }.get(pass_arg, ())  # type: ignore[call-overload]
        return _fits(func(*lead, value, *args, **kwargs), f"the output of filter `{name}`")

    wrapper.__name__ = getattr(func, "__name__", name)
    wrapper.__doc__ = func.__doc__
    return wrapper


def bounded_test(name: str, func: Callable[..., Any]) -> Callable[..., Any]:
    """`func` with the deadline checked; context-bound like filters."""
    pass_arg = _PassArg.from_obj(func)

    @pass_context
    def wrapper(context: Context, value: Any = None, *args: Any, **kwargs: Any) -> Any:
        _now().tick()
        lead = {
            _PassArg.context: (context,),
            _PassArg.eval_context: (context.eval_ctx,),
            _PassArg.environment: (context.environment,),
        }.get(pass_arg, ())  # type: ignore[call-overload]
        return func(*lead, value, *args, **kwargs)

    wrapper.__name__ = getattr(func, "__name__", name)
    return wrapper


def check_call(obj: Any, args: tuple, kwargs: dict) -> tuple:
    """Before a call: the size arguments of string and list methods bounded, and the methods
    whose result can outgrow their input (`replace`, `join`, `expandtabs`, `translate`)
    estimated. Returns the arguments to call with (an iterator given to `join` is read into a
    list, to be measured)."""
    cap = _now().max_chars
    owner = getattr(obj, "__self__", None)
    if not isinstance(owner, (str, bytes, list, tuple)):
        return args
    name = getattr(obj, "__name__", "")
    what = f"`.{name}()`"
    _check_int_args(what, itertools.chain(args, kwargs.values()))
    if not isinstance(owner, str):
        return args
    estimate: float = 0
    if name == "replace" and len(args) >= 2:
        old, new = str(args[0]), str(args[1])
        n = owner.count(old) if old else len(owner) + 1
        if len(args) > 2 and _is_int(args[2]) and args[2] >= 0:
            n = min(n, args[2])
        estimate = len(owner) + n * max(0, len(new) - len(old))
    elif name == "join" and args:
        items = args[0] if isinstance(args[0], (str, list, tuple)) else _materialize(args[0])
        args = (items, *args[1:])
        estimate = weight(items, cap) + len(owner) * len(items)
    elif name == "expandtabs":
        size = _arg(args, kwargs, 0, "tabsize", 8)
        estimate = len(owner) + owner.count("\t") * (size if _is_int(size) else 8)
    elif name == "translate" and args:
        table = args[0]
        parts = table.values() if isinstance(table, Mapping) else ()
        longest = max((weight(p, cap) for p in parts), default=1)
        estimate = len(owner) * max(1, longest)
    if estimate > cap:
        raise _refuse_size(f"the result of {what}")
    return args


class BoundedEnvironment(ImmutableSandboxedEnvironment):
    """The immutable sandbox with every operator, filter, test, call, attribute and item access
    checked against the running render's `Budget`.

    It never runs template code while compiling: the optimizer is off and every filter and test
    takes the context, so jinja2 cannot fold `{{ 'x' | center(10**9) }}` into a constant.
    `str.format`/`format_map` are refused outright (they reach attributes of their arguments),
    and `lipsum` and `urlize`, which make text out of nothing or for HTML only, are gone.
    """

    intercepted_binops = frozenset({"*", "**", "+", "%"})

    def __init__(self, **options: Any):
        super().__init__(optimized=False, **options)
        self.globals.pop("lipsum", None)
        self.filters.pop("urlize", None)
        self.filters = {n: bounded_filter(n, f) for n, f in self.filters.items()}
        self.tests = {n: bounded_test(n, f) for n, f in self.tests.items()}
        self.filters[OUT] = _out
        self.filters[ITER] = _iter
        self.filters[TEXT] = _text
        self.filters[VALUE] = _value

    def call_binop(self, context: Context, operator: str, left: Any, right: Any) -> Any:
        _now().tick()
        check_binop(operator, left, right)
        return _fits(self.binop_table[operator](left, right), f"the result of `{operator}`")

    def getattr(self, obj: Any, attribute: str) -> Any:
        _now().tick()
        return super().getattr(obj, attribute)

    def getitem(self, obj: Any, argument: Any) -> Any:
        _now().tick()
        return super().getitem(obj, argument)

    def wrap_str_format(self, value: Any) -> Callable[..., str] | None:
        if super().wrap_str_format(value) is None:
            return None
        name = value.__name__

        def refused(*args: Any, **kwargs: Any) -> str:
            raise SecurityError(
                f"`str.{name}` is not allowed in llmspec templates: join text with `~`, or use "
                "the `format` filter (`'%s: %s' | format(a, b)`)"
            )

        return refused

    def call(__self, __context: Context, __obj: Any, *args: Any, **kwargs: Any) -> Any:  # noqa: N805
        _now().tick()
        args = check_call(__obj, args, kwargs)
        rv = super().call(__context, __obj, *args, **kwargs)
        return _fits(rv, "the result of a call")


# -- the guard filters the renderer inserts ----------------------------------------------------


@pass_context
def _out(context: Context, value: Any) -> str:
    """Every piece of output: its source's size checked before str(), its length counted."""
    b = _now()
    b.tick()
    text = str(_fits(value, "a value written by the template"))
    b.emit(len(text))
    return text


@pass_context
def _iter(context: Context, value: Any) -> Any:
    """A loop's iterable, with the deadline checked at each step."""
    b = _now()
    if isinstance(value, Undefined):
        return value  # the loop raises the undefined error itself

    def steps() -> Any:
        for item in value:
            b.tick()
            yield item

    return steps()


@pass_context
def _text(context: Context, value: Any) -> Any:
    """An operand of `~`, sized before it is turned into text."""
    _now().tick()
    return _fits(value, "an operand of `~`")


@pass_context
def _value(context: Context, value: Any) -> Any:
    """A list, tuple or dict literal, or the result of `~`, sized once it is built."""
    return _fits(value, "a value built by the template")


def _wrap(node: nodes.Expr, name: str) -> nodes.Filter:
    return nodes.Filter(node, name, [], [], None, None, lineno=node.lineno)


class _Guard(NodeTransformer):
    """Rewrites a parsed template so that the guard filters see every output piece, loop,
    `~` and literal container."""

    def visit_Output(self, node: nodes.Output) -> nodes.Node:
        self.generic_visit(node)
        node.nodes = [_wrap(n, OUT) for n in node.nodes]
        return node

    def visit_For(self, node: nodes.For) -> nodes.Node:
        self.generic_visit(node)
        node.iter = _wrap(node.iter, ITER)
        return node

    def visit_Concat(self, node: nodes.Concat) -> nodes.Node:
        self.generic_visit(node)
        node.nodes = [_wrap(n, TEXT) for n in node.nodes]
        return _wrap(node, VALUE)

    def visit_List(self, node: nodes.List) -> nodes.Node:
        self.generic_visit(node)
        return _wrap(node, VALUE)

    def visit_Dict(self, node: nodes.Dict) -> nodes.Node:
        self.generic_visit(node)
        return _wrap(node, VALUE)

    def visit_Tuple(self, node: nodes.Tuple) -> nodes.Node:
        self.generic_visit(node)
        return _wrap(node, VALUE) if node.ctx == "load" else node


def guard(tree: nodes.Template, env: BoundedEnvironment) -> nodes.Template:
    """`tree` rewritten in place for `BoundedEnvironment` (see `_Guard`)."""
    _Guard().visit(tree)
    tree.set_environment(env)
    return tree
