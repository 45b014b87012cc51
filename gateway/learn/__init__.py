"""``gatehold rules learn``: a draft rules file from what an app actually serves.

The package reads evidence (access logs, an OpenAPI document), clusters paths into
templates of the rules format, proposes the ids each route names, and writes a draft
that loads, denies everything it did not see, and asks a person — never guesses —
who owns each object. Every module is pure: text in, values out; the command in
``gateway.cli`` reads the files and prints.
"""
