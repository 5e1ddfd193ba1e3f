"""Experiment pages and API: start one, follow its progress, read its plots, CSV and stats."""

from __future__ import annotations

import csv
import io
import re
from typing import Any

from flask import Blueprint, Response, abort, current_app, jsonify, redirect, render_template, request

from . import experiment_stats, practice, stepping
from . import experiments as ex
from . import params as param_rules
from .lesson import Lesson
from .lookup import manager, registry
from .views import body, is_htmx

bp = Blueprint("experiments", __name__)
_ID = re.compile(r"^[0-9a-f]{24}$")  # app/record.py new_run_id: refuses anything else before a lookup


def experiments() -> ex.ExperimentManager:
    return current_app.extensions["threadlab.experiments"]


def experiment_or_404(experiment_id: str) -> ex.Experiment:
    experiment = experiments().get(experiment_id) if _ID.match(experiment_id) else None
    if experiment is None:
        abort(404, description="no such experiment")
    return experiment


class BadInput(ValueError):
    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}")
        self.field, self.message = field, message


def _whole(raw: Any, field: str, low: int, high: int) -> int:
    text = str(raw).strip() if isinstance(raw, (int, str)) and not isinstance(raw, bool) else None
    if text is None or not re.fullmatch(r"\d{1,4}", text) or not low <= int(text) <= high:
        raise BadInput(field, f"expected a whole number from {low} to {high}")
    return int(text)


def parse(data: dict[str, Any], from_form: bool) -> tuple[Lesson, dict, int, dict | None, list[ex.Plan]]:
    """Everything checked before anything starts; the first problem raises BadInput naming it."""
    key = str(data.pop("lesson", "") or "")
    lesson = registry().get(key) if key else None
    if lesson is None:
        raise BadInput("lesson", f"no lesson {key!r}")
    if from_form:  # the page's own fields, then the run form's parameters (hx-include)
        # The run form's exercise, prediction and edited-copy choices are for one run, not these.
        practice.take_fields(data)
        stepping.take_fields(data)
        repeat_raw, name = data.pop("repeat", ""), str(data.pop("sweep_name", "") or "")
        texts = [t.strip() for t in str(data.pop("sweep_values", "") or "").split(",") if t.strip()]
        sweep_raw: Any = None
        if data.pop("mode", "sweep" if name else "repeat") == "sweep":  # the button pressed
            if not name:
                raise BadInput("sweep.name", "choose the parameter to sweep")
            sweep_raw = {"name": name, "values": texts}
        raw = data
    else:
        unknown = sorted(set(data) - {"params", "repeat", "sweep"})
        if unknown:
            raise BadInput(unknown[0], "unknown field (parameters go under \"params\")")
        repeat_raw, sweep_raw, raw = data.get("repeat", 1), data.get("sweep"), data.get("params", {})
        if not isinstance(raw, dict):
            raise BadInput("params", "expected an object")
    repeat = _whole(repeat_raw, "repeat", 1, ex.MAX_RUNS)
    try:
        params = param_rules.validate(lesson, raw, from_form=from_form)
    except param_rules.ParamError as err:
        raise BadInput(err.field, err.message) from None
    if not lesson.available:
        raise BadInput("lesson", f"lesson {lesson.id} needs {', '.join(lesson.requires)}")
    sweep, values = _sweep(lesson, raw, sweep_raw, from_form)
    if repeat * len(values) > ex.MAX_RUNS:
        raise BadInput("repeat", f"{repeat} x {len(values)} sweep values is {repeat * len(values)} "
                                 f"runs; at most {ex.MAX_RUNS}")
    plans = []
    for value in values:
        checked = params if sweep is None else {**params, sweep["name"]: value}
        plans.append(ex.Plan(value, checked, param_rules.to_argv(lesson, checked)))
    # Round-robin (0, 1, 2, 0, 1, 2, ...), not value by value: a machine that slows down
    # mid-experiment slows every group alike, and a cancel leaves some runs in every group.
    return lesson, params, repeat, sweep, [plan for _ in range(repeat) for plan in plans]


def _sweep(lesson: Lesson, raw: dict, sweep_raw: Any, from_form: bool) -> tuple[dict | None, list]:
    if sweep_raw is None:
        return None, [None]
    if not isinstance(sweep_raw, dict) or set(sweep_raw) - {"name", "values"}:
        raise BadInput("sweep", 'expected {"name": ..., "values": [...]}')
    name = sweep_raw.get("name")
    if not isinstance(name, str) or lesson.param(name) is None:
        raise BadInput("sweep.name", f"not a parameter of lesson {lesson.number}")
    values = sweep_raw.get("values")
    if not isinstance(values, list) or not 1 <= len(values) <= ex.MAX_SWEEP_VALUES:
        raise BadInput("sweep.values", f"expected a list of 1 to {ex.MAX_SWEEP_VALUES} values")
    checked = []
    for value in values:  # each exactly as a run's own parameter would be checked
        try:
            checked.append(param_rules.validate(lesson, {**raw, name: value}, from_form=from_form)[name])
        except param_rules.ParamError as err:
            raise BadInput("sweep.values", f"{value!r}: {err.message}") from None
    if len(set(map(repr, checked))) != len(checked):
        raise BadInput("sweep.values", "each value once")
    return {"name": name, "values": checked}, checked


@bp.post("/experiments")
def start_experiment():
    """Start an experiment: 201 with its id for JSON; the experiment page for the lesson's form."""
    data = body()
    data.pop("csrf_token", None)
    from_form = not request.is_json
    try:
        lesson, params, repeat, sweep, plans = parse(data, from_form)
        experiment = experiments().create(lesson, params, repeat, sweep, plans)
    except BadInput as err:
        lesson = registry().get(str(request.values.get("lesson", "")))
        if from_form and lesson is not None:
            return render_template("_partials/_experiment_form.html", lesson=lesson,
                                   form=request.form, error=err), 400
        return jsonify(error=str(err), field=err.field, message=err.message), 400
    except ex.RunLimitError as err:
        return jsonify(error=str(err)), 503
    url = f"/experiments/{experiment.id}"
    if request.is_json:
        return jsonify(id=experiment.id, url=url), 201
    if is_htmx():  # a whole new page (its own styles): htmx navigates there
        return Response(status=201, headers={"HX-Redirect": url})
    return redirect(url, code=303)


@bp.get("/experiments/<experiment_id>")
def experiment_page(experiment_id: str):
    """An experiment's page: progress while it runs, then a plot per result value; htmx polls
    get the live panel alone."""
    view = _view(experiment_or_404(experiment_id))
    if is_htmx():
        return render_template("_partials/_experiment_progress.html", **view)
    return render_template("experiment.html", **view)


@bp.post("/experiments/<experiment_id>/cancel")
def cancel_experiment(experiment_id: str):
    """Cancel: queued runs never start, live ones are stopped (SIGINT first, like Stop)."""
    experiment = experiment_or_404(experiment_id)
    experiment.cancel(manager())
    if request.is_json:
        return jsonify(id=experiment.id, status=experiment.status), 202
    if is_htmx():
        return render_template("_partials/_experiment_progress.html", **_view(experiment))
    return redirect(f"/experiments/{experiment.id}", code=303)


@bp.get("/api/experiments")
def api_experiments():
    """Every experiment, newest first (without their runs)."""
    return jsonify([{k: v for k, v in e.snapshot().items() if k != "runs"} for e in experiments().all()])


@bp.get("/api/experiments/<experiment_id>.csv")
def api_experiment_csv(experiment_id: str):
    """One row per run: run id, sweep value, status, then one column per result value."""
    data = experiment_or_404(experiment_id).snapshot()
    names = list(dict.fromkeys(n for slot in data["runs"] for n in slot.get("values") or {}))
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(["run_id", (data["sweep"] or {}).get("name", "sweep"), "status", *names])
    for slot in data["runs"]:
        values = slot.get("values") or {}
        writer.writerow([slot["id"] or "", "" if slot["sweep"] is None else slot["sweep"],
                         slot["status"], *(values.get(n, "") for n in names)])
    response = Response(out.getvalue(), mimetype="text/csv")
    response.headers["Content-Disposition"] = f'attachment; filename="experiment-{data["id"]}.csv"'
    return response


@bp.get("/api/experiments/<experiment_id>")
def api_experiment(experiment_id: str):
    """Status, runs (id, sweep value, status, result values), stats and progress."""
    data = experiment_or_404(experiment_id).snapshot()
    data["stats"] = experiment_stats.stats(data["lesson"], data["runs"], (data["sweep"] or {}).get("values"))
    data["progress"] = experiment_stats.progress(data)
    # Not jsonify: Flask sorts keys, and the lesson's own order of its values (its key figure where
    # it puts it) is part of the answer; JSON parsers, browsers' included, keep an object's order.
    return Response(current_app.json.dumps(data, sort_keys=False), mimetype="application/json")


@bp.get("/experiments/<experiment_id>/plots/<name>.svg")
def experiment_plot(experiment_id: str, name: str):
    """One result value's plot as a standalone SVG (the page draws the same one inline)."""
    view = _view(experiment_or_404(experiment_id))
    plot = next((p for p in view["plots"] if p["name"] == name), None)
    if plot is None:
        abort(404, description="no such value")
    svg = render_template("_partials/_experiment_plot.svg", plot=plot, standalone=True)
    return Response(svg, mimetype="image/svg+xml")


def _view(experiment: ex.Experiment) -> dict[str, Any]:
    data = experiment.snapshot()
    stats = experiment_stats.stats(data["lesson"], data["runs"], (data["sweep"] or {}).get("values"))
    return {"exp": data, "progress": experiment_stats.progress(data), "stats": stats,
            "plots": plots(data, stats), "lesson": registry().get(data["lesson"])}


# -- plot geometry: the template only draws what is measured here ---------------------------------

WIDTH, LEFT, RIGHT = 760, 200, 28  # px; the left margin holds labels like "switch_interval=0.001"
ROW, TOP, AXIS = 64, 8, 44  # px per sweep group, above the first, below the last (tick labels)
TICKS = 5


def plots(data: dict[str, Any], stats: dict[str, Any]) -> list[dict[str, Any]]:
    """A strip plot per result value, the lesson's key figure first: one row per sweep group, a dot
    per run (linked to its page) over that group's histogram, and a tick at the median."""
    sweep = data["sweep"] or {}
    groups = [experiment_stats.group_key(v) for v in sweep.get("values") or [None]]
    out = []
    for name in experiment_stats.key_first(data["lesson"], list(stats)):
        by_group = stats[name]
        edges = next(iter(by_group.values()))["edges"]
        lo, hi = edges[0], edges[-1]
        if lo == hi:  # every run said the same: centre it
            lo, hi = lo - 1, hi + 1

        def x(v: float, lo: float = lo, hi: float = hi) -> float:
            return round(LEFT + (v - lo) / (hi - lo) * (WIDTH - LEFT - RIGHT), 1)

        rows, heads = [], []
        for index, group in enumerate(groups):
            top, entry = TOP + index * ROW, by_group[group]
            label = f"{sweep['name']}={group}" if sweep else "all runs"
            slots = [s for s in data["runs"]
                     if experiment_stats.group_key(s["sweep"]) == group and name in (s.get("values") or {})]
            # Dots spread up and down by a fixed pattern (no randomness: a reload draws the same).
            marks = [{"x": x(s["values"][name]), "y": top + ROW / 2 + ((i * 7) % 9 - 4) * 5,
                      "id": s["id"], "value": s["values"][name], "ok": s["status"] == "exited"}
                     for i, s in enumerate(slots)]
            most = max(entry["counts"], default=0) or 1
            span = len(edges) - 1
            bars = [{"x": x(edges[b]) if span > 1 else x(edges[0]) - 6,
                     "w": max(2.0, x(edges[b + 1]) - x(edges[b]) - 1) if span > 1 else 12,
                     "h": round(c / most * (ROW - 12), 1),
                     "y": round(top + ROW - 6 - c / most * (ROW - 12), 1)}
                    for b, c in enumerate(entry["counts"]) if c]
            median = x(entry["median"]) if entry["n"] else None
            rows.append({"label": label, "top": top, "marks": marks, "bars": bars, "median": median,
                         "n": entry["n"]})
            if "point" in entry:
                heads.append((entry["point"], label))
        headline = ""
        if heads:
            headline = f"{heads[0][0]['rule']} in " + ", ".join(
                f"{pt['hits']} of {pt['of']}" + (f" ({label})" if sweep else " runs") for pt, label in heads)
        height = TOP + len(groups) * ROW + AXIS
        at = [lo + (hi - lo) * t / (TICKS - 1) for t in range(TICKS)]
        ticks = [{"x": x(v), "label": f"{v:.4g}"} for v in at]
        out.append({"name": name, "rows": rows, "ticks": ticks, "width": WIDTH, "height": height,
                    "left": LEFT, "right": WIDTH - RIGHT, "axis_y": TOP + len(groups) * ROW,
                    "headline": headline})
    return out
