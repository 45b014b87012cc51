"""The admin JSON API under ``/.gatehold/api/``: a thin front end over ``gateway.admin``.

``operations.py`` declares operations once (method, path, pydantic models, the statuses
they may answer); ``serve.py`` serves them (authentication, CSRF, parsing, problem+json,
one audit row per call); ``openapi.py`` documents the same table; the endpoint modules
(``people.py``, ``tenants.py``, ``keys.py``, ``audit_trail.py``) are one short function
per operation over the admin service.
"""
