"""Plain-JSON encoding of contract dataclasses: dates as ISO strings, UUIDs as strings, enums by value."""

from __future__ import annotations

import dataclasses
import datetime as dt
import enum
import types
import typing
import uuid
from collections.abc import Mapping
from typing import Any, ClassVar, Protocol, TypeVar


class Contract(Protocol):
    event_type: ClassVar[str]
    schema_version: ClassVar[int]
    __dataclass_fields__: ClassVar[dict[str, Any]]


C = TypeVar("C")


class ContractDecodeError(ValueError):
    """A payload does not match its contract; names the field at fault."""


def to_json(value: Any) -> Any:
    """Plain JSON values: dataclasses as objects, dates as ISO strings, UUIDs as strings, enums by value."""
    kind = type(value)
    if kind in _SCALARS:
        return value
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return _encoder_for(kind)(value)
    encode = _ENCODERS.get(kind)
    if encode is not None:
        return encode(value)
    if isinstance(value, enum.Enum):
        return value.value
    if isinstance(value, dt.date):
        return value.isoformat()
    if isinstance(value, Mapping):
        return {str(k): to_json(v) for k, v in value.items()}
    if isinstance(value, tuple | list):
        return [to_json(v) for v in value]
    return value


_SCALARS = frozenset({str, int, float, bool, type(None)})
_ENCODERS: dict[type, Any] = {
    dt.date: dt.date.isoformat,
    dt.datetime: dt.datetime.isoformat,
    uuid.UUID: str,
    tuple: lambda v: [to_json(x) for x in v],
    list: lambda v: [to_json(x) for x in v],
    dict: lambda v: {str(k): to_json(x) for k, x in v.items()},
}
_DATACLASS_ENCODERS: dict[type, Any] = {}


def _encoder_for(cls: type) -> Any:
    """One encoder per contract class, chosen from its field types once (bulk paths encode millions)."""
    encoder = _DATACLASS_ENCODERS.get(cls)
    if encoder is not None:
        return encoder
    hints = _hints(cls)
    plan = [(name, _field_encoder(hints[name])) for name in _field_names(cls)]

    def encode(value: Any) -> dict[str, Any]:
        out = {}
        for name, field_encoder in plan:
            raw = getattr(value, name)
            out[name] = raw if field_encoder is None or raw is None else field_encoder(raw)
        return out

    _DATACLASS_ENCODERS[cls] = encode
    return encode


def _field_encoder(hint: Any) -> Any:
    """None when the value is already plain JSON, else a function that makes it so."""
    origin = typing.get_origin(hint)
    if origin in (typing.Union, types.UnionType):
        options = [a for a in typing.get_args(hint) if a is not type(None)]
        return _field_encoder(options[0]) if len(options) == 1 else to_json
    if origin is typing.Literal or hint in (str, int, float, bool):
        return None
    if hint is dt.date or hint is dt.datetime:
        return lambda v: v.isoformat()
    return to_json


_FIELD_NAMES: dict[type, tuple[str, ...]] = {}
_HINTS: dict[type, dict[str, Any]] = {}


def _field_names(cls: type) -> tuple[str, ...]:
    names = _FIELD_NAMES.get(cls)
    if names is None:
        names = _FIELD_NAMES[cls] = tuple(f.name for f in dataclasses.fields(cls))
    return names


def _hints(cls: type) -> dict[str, Any]:
    hints = _HINTS.get(cls)
    if hints is None:
        hints = _HINTS[cls] = typing.get_type_hints(cls)
    return hints


def from_json(cls: type[C], data: Mapping[str, Any]) -> C:
    return _decoder_for(cls)(data)  # type: ignore[no-any-return]


_DECODERS: dict[type, Any] = {}


def _decoder_for(cls: type) -> Any:
    """One decoder per contract class, its field checks chosen from the type hints once (a load folds millions)."""
    decoder = _DECODERS.get(cls)
    if decoder is not None:
        return decoder
    hints = _hints(cls)
    plan = [(f.name, f.default is not dataclasses.MISSING or f.default_factory is not dataclasses.MISSING,
             _field_decoder(hints[f.name])) for f in dataclasses.fields(cls)]
    class_name = cls.__name__

    def decode(data: Mapping[str, Any]) -> Any:
        values: dict[str, Any] = {}
        for name, optional, coerce in plan:
            if name not in data:
                if optional:
                    continue
                raise ContractDecodeError(f"{class_name}.{name}: missing")
            raw = data[name]
            if coerce is None:
                values[name] = raw
                continue
            try:
                values[name] = coerce(raw)
            except (TypeError, ValueError) as exc:
                raise ContractDecodeError(f"{class_name}.{name}: {exc}") from exc
        return cls(**values)

    _DECODERS[cls] = decode
    return decode


def _identity(raw: Any) -> Any:
    return raw


def _field_decoder(hint: Any) -> Any:
    """A function that checks and converts one field's JSON value; None when any value is taken as it is."""
    origin = typing.get_origin(hint)
    if origin in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(hint) if a is not type(None)]
        inner = _field_decoder(args[0]) or _identity
        return lambda raw: None if raw is None else inner(raw)
    if origin in (tuple, list):
        item = _field_decoder(typing.get_args(hint)[0]) or _identity

        def sequence(raw: Any) -> tuple[Any, ...]:
            if not isinstance(raw, list | tuple):
                raise TypeError(f"expected a list, got {type(raw).__name__}")
            return tuple(item(v) for v in raw)
        return sequence
    if origin is dict:
        def mapping(raw: Any) -> dict[Any, Any]:
            if not isinstance(raw, dict):
                raise TypeError(f"expected an object, got {type(raw).__name__}")
            return dict(raw)
        return mapping
    if origin is typing.Literal:
        allowed = typing.get_args(hint)

        def literal(raw: Any) -> Any:
            if raw not in allowed:
                raise ValueError(f"{raw!r} is not one of {allowed}")
            return raw
        return literal
    if hint is Any or not isinstance(hint, type):
        return None
    if hint is dt.date:
        return dt.date.fromisoformat
    if hint is dt.datetime:
        return dt.datetime.fromisoformat
    if hint is uuid.UUID:
        return lambda raw: uuid.UUID(str(raw))
    if issubclass(hint, enum.Enum):
        return hint
    if dataclasses.is_dataclass(hint):
        def nested(raw: Any) -> Any:
            if not isinstance(raw, dict):
                raise TypeError(f"expected an object, got {type(raw).__name__}")
            return _decoder_for(hint)(raw)
        return nested
    if hint is float:
        return lambda raw: float(raw) if isinstance(raw, int) else raw
    if hint in (str, int, bool, dict):
        def checked(raw: Any) -> Any:
            if not isinstance(raw, hint):
                raise TypeError(f"expected {hint.__name__}, got {type(raw).__name__}")
            return raw
        return checked
    return None


class Catalogue:
    """The named, versioned event types of one topic: explicit strings, never Python import paths."""

    def __init__(self, source: str, *classes: type[Any]) -> None:
        self.source = source
        self._by_name: dict[str, type[Any]] = {}
        for cls in classes:
            self._by_name[cls.event_type] = cls

    def __contains__(self, event_type: str) -> bool:
        return event_type in self._by_name

    def names(self) -> list[str]:
        return sorted(self._by_name)

    def classes(self) -> list[type[Any]]:
        return [self._by_name[n] for n in self.names()]

    def ce_type(self, event_type: str) -> str:
        cls = self._by_name[event_type]
        return f"vn.party.{self.source}.{event_type}.v{cls.schema_version}"

    def decode(self, event_type: str, data: Mapping[str, Any]) -> Any:
        try:
            cls = self._by_name[event_type]
        except KeyError:
            raise ContractDecodeError(f"unknown event type {event_type!r} on {self.source}") from None
        return from_json(cls, data)

    @staticmethod
    def parse_ce_type(ce_type: str) -> tuple[str, str, int]:
        """`vn.party.registry.OrganizationUnitEstablished.v1` -> (registry, OrganizationUnitEstablished, 1)."""
        parts = ce_type.split(".")
        if len(parts) != 5 or parts[:2] != ["vn", "party"] or not parts[4].startswith("v"):
            raise ContractDecodeError(f"not a party event type: {ce_type!r}")
        return parts[2], parts[3], int(parts[4][1:])
