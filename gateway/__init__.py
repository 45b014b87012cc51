"""Gatehold: an identity-aware reverse proxy for apps that check nothing themselves."""

__version__ = "0.1.0"
