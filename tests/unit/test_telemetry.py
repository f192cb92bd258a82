"""Spans are recorded only when something reads them; trace context travels either way."""

from __future__ import annotations

from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

from servicekit.telemetry import context_from, tracer_provider_for

RESOURCE = Resource.create({"service.name": "test"})


def test_with_nothing_to_read_them_spans_are_not_recorded_but_carry_a_valid_trace_context() -> None:
    provider = tracer_provider_for(RESOURCE, record_spans=False)
    exporter = InMemorySpanExporter()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    tracer = provider.get_tracer("test")
    with tracer.start_as_current_span("POST /units") as span:
        assert not span.is_recording()
        assert span.get_span_context().is_valid
        carrier: dict[str, str] = {}
        TraceContextTextMapPropagator().inject(carrier)
        trace_id = format(span.get_span_context().trace_id, "032x")
        assert carrier["traceparent"].split("-")[1] == trace_id, "the command's events still get its traceparent"
    with tracer.start_as_current_span("publish", context=context_from(carrier["traceparent"])) as child:
        assert format(child.get_span_context().trace_id, "032x") == trace_id
    assert exporter.get_finished_spans() == ()


def test_a_callers_sampled_trace_is_recorded_even_with_nothing_configured() -> None:
    provider = tracer_provider_for(RESOURCE, record_spans=False)
    parent = context_from("00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01")
    with provider.get_tracer("test").start_as_current_span("POST /units", context=parent) as span:
        assert span.is_recording()


def test_spans_are_recorded_when_something_reads_them() -> None:
    provider = tracer_provider_for(RESOURCE, record_spans=True)
    exporter = InMemorySpanExporter()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    with provider.get_tracer("test").start_as_current_span("POST /units") as span:
        assert span.is_recording()
    assert [s.name for s in exporter.get_finished_spans()] == ["POST /units"]
