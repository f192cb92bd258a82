"""JSON Schema and an AsyncAPI 3 document generated from the contract dataclasses (stdlib only)."""

from __future__ import annotations

import dataclasses
import datetime as dt
import types
import typing
import uuid
from typing import Any

from contracts import admissions_v1, registry_v1, topics, transfers_v1
from contracts.codec import Catalogue

CATALOGUES: dict[str, Catalogue] = {
    topics.REGISTRY: registry_v1.CATALOGUE,
    topics.ADMISSIONS: admissions_v1.CATALOGUE,
    topics.TRANSFERS: transfers_v1.CATALOGUE,
}


def _schema_for(hint: Any) -> dict[str, Any]:
    origin = typing.get_origin(hint)
    if origin in (typing.Union, types.UnionType):
        args = typing.get_args(hint)
        options = [_schema_for(a) for a in args if a is not type(None)]
        schema = options[0] if len(options) == 1 else {"anyOf": options}
        if type(None) in args:
            return {"anyOf": [schema, {"type": "null"}]}
        return schema
    if origin is typing.Literal:
        return {"type": "string", "enum": list(typing.get_args(hint))}
    if origin in (tuple, list):
        return {"type": "array", "items": _schema_for(typing.get_args(hint)[0])}
    if origin is dict or hint is dict:
        return {"type": "object"}
    if hint is str:
        return {"type": "string"}
    if hint is bool:
        return {"type": "boolean"}
    if hint is int:
        return {"type": "integer"}
    if hint is float:
        return {"type": "number"}
    if hint is dt.date:
        return {"type": "string", "format": "date"}
    if hint is dt.datetime:
        return {"type": "string", "format": "date-time"}
    if hint is uuid.UUID:
        return {"type": "string", "format": "uuid"}
    if dataclasses.is_dataclass(hint):
        return event_schema(hint)  # type: ignore[arg-type]
    return {}


def event_schema(cls: type[Any]) -> dict[str, Any]:
    hints = typing.get_type_hints(cls)
    fields = dataclasses.fields(cls)
    required = [f.name for f in fields
                if f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING]
    return {
        "type": "object",
        "title": getattr(cls, "event_type", cls.__name__),
        "description": (cls.__doc__ or "").strip().splitlines()[0] if cls.__doc__ else "",
        "properties": {f.name: _schema_for(hints[f.name]) for f in fields},
        "required": required,
        "additionalProperties": True,
    }


def json_schemas() -> dict[str, dict[str, Any]]:
    """File name -> JSON Schema of each event's data."""
    out: dict[str, dict[str, Any]] = {}
    for catalogue in CATALOGUES.values():
        for cls in catalogue.classes():
            schema = {"$schema": "https://json-schema.org/draft/2020-12/schema",
                      "$id": f"{catalogue.ce_type(cls.event_type)}.json", **event_schema(cls)}
            out[f"{catalogue.ce_type(cls.event_type)}.json"] = schema
    return out


def asyncapi() -> dict[str, Any]:
    channels: dict[str, Any] = {}
    operations: dict[str, Any] = {}
    messages: dict[str, Any] = {}
    headers = {
        "type": "object",
        "required": ["ce_specversion", "ce_id", "ce_source", "ce_type", "ce_subject", "ce_time", "content-type",
                     "ce_streamversion"],
        "properties": {
            "ce_specversion": {"const": "1.0"},
            "ce_id": {"type": "string", "format": "uuid", "description": "Event id"},
            "ce_source": {"type": "string", "description": "/party/<service>"},
            "ce_type": {"type": "string", "description": "vn.party.<service>.<EventName>.v<N>"},
            "ce_subject": {"type": "string", "description": "Aggregate id (also the record key)"},
            "ce_time": {"type": "string", "format": "date-time"},
            "content-type": {"const": "application/json"},
            "ce_streamversion": {"type": "string", "description": "Aggregate version after this event"},
            "ce_correlationid": {"type": "string"},
            "ce_causationid": {"type": "string"},
            "ce_actor": {"type": "string"},
            "ce_commandid": {"type": "string", "description": "Id of the command that wrote this event"},
            "ce_commandeventcount": {"type": "string", "description": "How many events that command wrote"},
            "traceparent": {"type": "string"},
            "tracestate": {"type": "string"},
        },
    }
    for topic, catalogue in CATALOGUES.items():
        channel_id = topic.replace(".", "_")
        refs = {}
        for cls in catalogue.classes():
            name = cls.event_type
            messages[name] = {
                "name": name,
                "title": name,
                "contentType": "application/json",
                "headers": headers,
                "payload": event_schema(cls),
                "bindings": {"kafka": {"key": {"type": "string", "description": "aggregate id"}}},
                "x-ce-type": catalogue.ce_type(name),
            }
            refs[name] = {"$ref": f"#/components/messages/{name}"}
        channels[channel_id] = {"address": topic, "messages": refs}
        operations[f"publish_{channel_id}"] = {
            "action": "send",
            "channel": {"$ref": f"#/channels/{channel_id}"},
            "messages": [{"$ref": f"#/channels/{channel_id}/messages/{n}"} for n in refs],
        }
    return {
        "asyncapi": "3.0.0",
        "info": {"title": "Party register events", "version": "1.0.0",
                 "description": "CloudEvents 1.0 in Kafka binary mode; one topic per service and major version."},
        "defaultContentType": "application/json",
        "channels": channels,
        "operations": operations,
        "components": {"messages": messages},
    }
