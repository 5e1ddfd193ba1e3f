"""The JSON API and a run's drawings: what scripts read, and what the page fetches as it scrubs.

Every run read here is read under ``manager().viewing(run_id)``, so pruning waits for the reader.
"""

from __future__ import annotations

import math

from flask import Blueprint, Response, abort, jsonify, render_template, request, stream_with_context

from . import models, stepping, timeline
from .lookup import manager, registry, run_or_404

bp = Blueprint("api", __name__)


@bp.get("/api/lessons")
def api_lessons():
    """Every lesson with its parameters, as the form and scripts use them."""
    return jsonify([lesson.to_json() for lesson in registry().all()])


@bp.get("/api/runs")
def api_runs():
    """Every run, newest first."""
    return jsonify([run.to_json() for run in manager().all()])


@bp.get("/api/runs/<run_id>")
def api_run(run_id: str):
    """One run's status, with what its exit code does not say: ``crashed`` (lesson threads that died
    of an exception) and ``why`` (a failed run's exception, a result that says it did not pass)."""
    run = run_or_404(run_id)
    data = run.to_json()  # first: a run that ends meanwhile has a model at least as new as this
    with manager().viewing(run.id) as run:  # None: pruned since run_or_404
        if run is None:
            abort(404, description="no such run")
        summary = models.model_for(run).summary()
        if run.step:
            data["schedule"] = stepping.schedule_of(run)  # the steps so far: replay them
    data.update(crashed=summary["crashed"], why=summary["why"])
    return jsonify(data)


@bp.get("/api/runs/<run_id>/state")
def api_run_state(run_id: str):
    """The run at one instant, ``?t=`` seconds from its first event (beyond the end: the end)."""
    run = run_or_404(run_id)
    t = seconds_param("t", required=True)
    with manager().viewing(run.id) as run:  # None: pruned since run_or_404
        if run is None:
            abort(404, description="no such run")
        model = models.model_for(run)
    return jsonify(model.state_at(t))


@bp.get("/runs/<run_id>/moment")
def run_moment(run_id: str):
    """The run page's panes at ``?t=`` (the time bar): thread rows, the deadlock banner as it stood,
    and where the log and the previous and next events are. HTML pieces the page puts in place."""
    run = run_or_404(run_id)
    t = seconds_param("t", required=True)
    with manager().viewing(run.id) as run:  # None: pruned since run_or_404
        if run is None:
            abort(404, description="no such run")
        model = models.model_for(run)
    state = model.state_at(t)
    return render_template("_partials/_moment.html", run=run, state=state,
                           prev=model.step(state["t"], -1), next=model.step(state["t"], 1))


@bp.get("/api/runs/<run_id>/events")
def api_events(run_id: str):
    """The run's events as NDJSON: all, or those with seq > ``after``; also the log download."""
    run = run_or_404(run_id)
    after = after_param()

    runs = manager()
    if runs.view(run.id) is None:  # pruned since run_or_404
        abort(404, description="no such run")

    def lines():
        # The file's own bytes, a megabyte at a time: at disk speed, never the run in memory.
        yield from run.log.raw_chunks(after)

    response = Response(stream_with_context(lines()), mimetype="application/x-ndjson")
    response.call_on_close(lambda: runs.leave(run))  # a download is not cut short by pruning
    if request.args.get("download"):
        response.headers["Content-Disposition"] = f'attachment; filename="{run.id}-events.jsonl"'
    return response


@bp.get("/runs/<run_id>/timeline")
def run_timeline(run_id: str):
    """The run's timeline as SVG, from its view model; ``?from=&to=`` (seconds) draws a part of it.

    A finished run's drawing never changes: it gets an ETag (run id and event count), and a viewer
    that polls it is answered 304 without a drawing."""
    run = run_or_404(run_id)
    t0, t1 = seconds_param("from"), seconds_param("to")
    if t0 is not None and t1 is not None and t1 <= t0:
        abort(400, description="to: expected a time after from")
    with manager().viewing(run.id) as run:  # None: pruned since run_or_404
        if run is None:
            abort(404, description="no such run")
        model = models.model_for(run)
    etag = f'"{run.id}-{model.count}"' if model.complete else None
    if etag and etag in request.headers.get("If-None-Match", ""):
        response = Response(status=304)
    else:
        response = Response(timeline.render_model(model, t0, t1), mimetype="image/svg+xml")
    if etag:
        response.headers["ETag"] = etag
        response.headers["Cache-Control"] = "no-cache"  # ask every time; the answer is mostly 304
    else:
        response.headers["Cache-Control"] = "no-store"
    return response


def seconds_param(name: str, required: bool = False) -> float | None:
    """``?t=1.25``: seconds from the run's first event, finite and not negative; None if absent."""
    text = request.args.get(name)
    if text is None or (text == "" and not required):
        if required:
            abort(400, description=f"{name}: expected seconds from the run's start, e.g. {name}=1.25")
        return None
    try:
        value = float(text) if len(text) <= 32 else math.nan
    except ValueError:
        value = math.nan
    if not math.isfinite(value) or value < 0:
        abort(400, description=f"{name}: expected a finite number of seconds, 0 or more")
    return value


def after_param() -> int:
    """``?after=N``: the seq of the last event the client has; -1 (the default) for all of them."""
    text = request.args.get("after", "-1")
    try:
        after = int(text)
    except ValueError:
        after = None
    if after is None or after < -1 or len(text) > 20:
        abort(400, description="after: expected a whole number of -1 or more")
    return after
