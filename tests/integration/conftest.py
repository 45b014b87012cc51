"""Fixtures for tests that run real servers."""

from tests.support.smtp import smtp_server

__all__ = ["smtp_server"]
