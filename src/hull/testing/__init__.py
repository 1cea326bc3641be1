"""Helpers for tests and demos: bundles built from the host's busybox-static, no network."""
