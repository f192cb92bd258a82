"""Private PostgreSQL and Kafka-protocol broker for development, tests and `make up`."""
