"""A ``raw`` field decoded on first access (internal; the providers and models use it).

A provider whose response body decodes straight into the neutral models keeps the body,
not a second object graph, and puts a :class:`LazyRaw` in ``Conversation.raw``. The field's
descriptor (:func:`install`) decodes the wire object on first attribute access, stores it
in the field and returns it, so ``conversation.raw`` is exactly what an eager decode would
have given (same type, equal value). What reads the field without ``getattr`` sees the
:class:`LazyRaw`, which behaves as the wire object would:

- ``==``, ``hash`` and ``repr`` are the wire object's;
- ``pickle`` and ``copy`` give the wire object itself (a round trip holds it decoded);
- ``msgspec.json.encode``, ``msgspec.msgpack.encode`` and ``msgspec.to_builtins`` see a
  dataclass whose fields are the wire Struct's encoded names, in order, so they write what
  encoding the wire Struct writes (``UNSET`` fields left out).

Only ``msgspec.structs.asdict``/``astuple`` hand out the :class:`LazyRaw` itself.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any, ClassVar

import msgspec

__all__ = ["LazyRaw", "install", "lazy_raw_type", "stored"]

_PENDING: Any = object()
_LOCK = threading.Lock()


class LazyRaw:
    """A wire object still to decode: the body, and what ``resolve`` shares with it."""

    __slots__ = ("_body", "_context", "_value")

    # Set by lazy_raw_type: bytes and context -> the wire object.
    _resolve: ClassVar[Callable[[bytes, Any], object]]

    def __init__(self, body: bytes, context: Any = None) -> None:
        self._body = body
        self._context = context
        self._value = _PENDING

    def resolved(self) -> Any:
        """The wire object, decoded once (the first caller decodes; the body is dropped)."""
        value = self._value
        if value is _PENDING:
            with _LOCK:
                value = self._value
                if value is _PENDING:
                    value = self._value = type(self)._resolve(self._body, self._context)
                    self._body = b""
                    self._context = None
        return value

    def __getattr__(self, name: str) -> Any:
        # Only reached for names that are not slots: the encoded field names msgspec reads.
        fields: dict[str, str] = type(self).__dict__.get("_names", {})
        if name not in fields:
            raise AttributeError(name)
        return getattr(self.resolved(), fields[name])

    def __eq__(self, other: object) -> bool:
        if isinstance(other, LazyRaw):
            other = other.resolved()
        result: bool = self.resolved() == other
        return result

    def __hash__(self) -> int:
        return hash(self.resolved())

    def __repr__(self) -> str:
        return repr(self.resolved())

    def __reduce__(self) -> str | tuple[Any, ...]:
        return self.resolved().__reduce__()  # type: ignore[no-any-return]


def lazy_raw_type(
    wire: type[msgspec.Struct], resolve: Callable[[bytes, Any], object]
) -> type[LazyRaw]:
    """A :class:`LazyRaw` subclass for ``wire``: ``resolve(body, context)`` decodes it."""
    names = {f.encode_name: f.name for f in msgspec.structs.fields(wire)}
    return type(
        f"Lazy{wire.__name__}",
        (LazyRaw,),
        {
            "__slots__": (),
            "_resolve": staticmethod(resolve),
            "_names": names,
            # msgspec encodes any object whose type has __dataclass_fields__ as a dataclass,
            # reading each field with getattr: here, the wire Struct's fields by encoded name.
            "__dataclass_fields__": dict.fromkeys(names),
        },
    )


class _Field:
    """The descriptor of a field that may hold a :class:`LazyRaw`."""

    def __init__(self, member: Any) -> None:
        self.member = member

    def __get__(self, instance: object, owner: type | None = None) -> Any:
        if instance is None:
            return self
        value = self.member.__get__(instance, owner)
        if isinstance(value, LazyRaw):
            value = value.resolved()
            # The slot's own descriptor: a frozen Struct refuses setattr, not this.
            self.member.__set__(instance, value)
        return value

    def __set__(self, instance: object, value: Any) -> None:
        self.member.__set__(instance, value)

    def __delete__(self, instance: object) -> None:
        self.member.__delete__(instance)


def install(cls: type[msgspec.Struct], name: str) -> None:
    """Make field ``name`` of ``cls`` decode a :class:`LazyRaw` on first access."""
    setattr(cls, name, _Field(cls.__dict__[name]))


def stored(instance: msgspec.Struct, name: str = "raw") -> Any:
    """Field ``name`` as stored, without decoding a :class:`LazyRaw` in it."""
    field = type(instance).__dict__[name]
    member = field.member if isinstance(field, _Field) else field
    return member.__get__(instance, type(instance))
