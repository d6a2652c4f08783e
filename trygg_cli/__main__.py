"""``python -m trygg_cli gateway``: the ``trygg`` command without its console script (tests start services so)."""

from trygg_cli.app import app

app()
