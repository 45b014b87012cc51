"""``python -m gateway``: the ``gatehold`` command.

Guarded, so that importing this module (tools do) runs nothing. ``serve --workers N``
starts each further worker as ``python -m gateway serve --worker``.
"""

from gateway.cli import main

if __name__ == "__main__":
    main()
