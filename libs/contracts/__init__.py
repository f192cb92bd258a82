"""The published language: topic names, the CloudEvents envelope and every service's event contracts."""
