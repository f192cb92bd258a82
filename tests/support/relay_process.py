"""A relay in its own process, for tests that kill it (argv: URL SCHEMA TOPIC BOOTSTRAP BATCH)."""

from __future__ import annotations

import signal
import sys
import threading

from servicekit.relay import OutboxRelay, RelaySettings


def main() -> None:
    database_url, schema, topic, bootstrap, batch = sys.argv[1:6]
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    relay = OutboxRelay(RelaySettings(database_url=database_url, schema=schema, service="registry", topic=topic,
                                      partitions=4, bootstrap_servers=bootstrap, lease_ttl_s=1.5,
                                      batch_size=int(batch), idle_poll_s=0.05))
    relay.run(stop)


if __name__ == "__main__":
    main()
