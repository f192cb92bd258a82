"""`python -m registry api | relay`."""

from servicekit.runner import dispatch, run_worker, serve

from registry import main

dispatch("registry", {
    "api": lambda: serve("registry", main.create_api, port_env="REGISTRY_PORT", default_port=main.DEFAULT_PORT),
    "relay": lambda: run_worker("registry-relay", main.run_relay),
})
