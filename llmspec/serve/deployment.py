"""The Ray Serve deployment of a served model (imports Ray: loaded in replicas and `ctl`).

One class for every llmspec deployment: its replica builds a `ServedModel` from the config it
is bound to and serves that model's Starlette app. `build(args)` is the application builder a
`serve deploy` config names (`import_path: llmspec.serve.deployment:build`), written by
`llmspec deploy export`: `args` holds the config, or `config_file`, a JSON file on the head.
"""

from __future__ import annotations

import json
from typing import Any

from ray import serve

from llmspec.serve.app import ServedModel
from llmspec.serve.deployment_options import options


@serve.ingress()
class LlmspecServer:
    def __init__(self, config: dict[str, Any]):
        self.served = ServedModel(config)

    def __serve_build_asgi_app__(self) -> Any:
        return self.served.asgi()


Server = serve.deployment(LlmspecServer, name="llmspec", ray_actor_options={"num_cpus": 0})


def build(args: dict[str, Any]) -> Any:
    """The application of an exported config: `{config: {...}}` or `{config_file: PATH}`."""
    config = args.get("config")
    if config is None:
        with open(args["config_file"], encoding="utf-8") as fh:
            config = json.load(fh)
    return Server.options(**options(config["target"])).bind(config)
