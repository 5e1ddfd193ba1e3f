"""threadlab's web server: ``create_app()`` builds it; ``threadlab serve`` runs it."""

from __future__ import annotations

import os
from datetime import timedelta
from pathlib import Path
from typing import Any

from flask import Flask

from . import defaults

ROOT = Path(__file__).resolve().parent.parent


def default_data_dir() -> Path:
    """Per-user: ``$THREADLAB_DATA_DIR``, else ``$XDG_DATA_HOME/threadlab`` or ~/.local/share/threadlab."""
    if os.environ.get("THREADLAB_DATA_DIR"):
        return Path(os.environ["THREADLAB_DATA_DIR"])
    base = os.environ.get("XDG_DATA_HOME") or Path.home() / ".local" / "share"
    return Path(base) / "threadlab"


def create_app(test_config: dict[str, Any] | None = None) -> Flask:
    """Build the app. ``test_config`` overrides the defaults below (tests use temp folders)."""
    app = Flask(__name__, template_folder=str(ROOT / "templates"), static_folder=str(ROOT / "static"))
    app.config.from_mapping(
        DATA_DIR=str(default_data_dir()),
        LESSONS_DIR=str(ROOT / "lessons"),
        HOST=defaults.HOST,
        PORT=defaults.PORT,
        ACCESS_TOKEN=None,  # set when serving beyond loopback (see app/cli.py)
        RUN_TIME_LIMIT=defaults.RUN_TIME_LIMIT,
        MAX_LIVE_RUNS=defaults.MAX_LIVE_RUNS,
        MAX_SOCKETS=defaults.MAX_SOCKETS,
        SAMPLE_INTERVAL=defaults.SAMPLE_INTERVAL,
        KEEP_RUNS=defaults.KEEP_RUNS,
        ALLOW_EDITS=False,  # on a server open to the network, may learners run edited lessons?
        MAX_CONTENT_LENGTH=64 * 1024,  # a run's parameters fit in far less
        SOCK_SERVER_OPTIONS={"ping_interval": 20, "max_message_size": 64 * 1024},
    )
    if test_config:
        app.config.from_mapping(test_config)
    data_dir = Path(app.config["DATA_DIR"])
    data_dir.mkdir(parents=True, exist_ok=True)

    from . import api, experiment_views, practice, security, sockets, stepping, views
    from .experiments import ExperimentManager
    from .registry import Registry
    from .runs import RunManager
    from .scratch import ScratchStore

    app.secret_key = security.read_or_create_secret(data_dir / "secret_key")
    app.config.update(SESSION_COOKIE_SAMESITE="Strict", SESSION_COOKIE_HTTPONLY=True,
                      PERMANENT_SESSION_LIFETIME=timedelta(days=defaults.BROWSER_DAYS))
    app.extensions["threadlab.registry"] = Registry(Path(app.config["LESSONS_DIR"]))
    # Experiments first: the run manager prunes as it loads, and must keep the runs they show.
    experiments = app.extensions["threadlab.experiments"] = ExperimentManager(data_dir)
    app.extensions["threadlab.runs"] = experiments.runs = RunManager(
        data_dir, time_limit=app.config["RUN_TIME_LIMIT"], max_live=app.config["MAX_LIVE_RUNS"],
        sample_interval=app.config["SAMPLE_INTERVAL"], keep_runs=app.config["KEEP_RUNS"],
        pinned=experiments.pinned,
    )
    app.extensions["threadlab.scratch"] = ScratchStore(data_dir / "scratch")
    security.init_app(app)
    sockets.init_app(app)
    app.register_blueprint(views.bp)
    app.register_blueprint(api.bp)
    app.register_blueprint(experiment_views.bp)
    app.register_blueprint(practice.bp)
    app.register_blueprint(stepping.bp)
    from . import filters

    filters.init_app(app)
    return app
