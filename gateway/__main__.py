"""``python -m gateway``: the ``gatehold`` command.

Guarded, because ``serve --workers N`` starts its workers with the spawn method, which
imports this module again in every worker under another name.
"""

from gateway.cli import main

if __name__ == "__main__":
    main()
