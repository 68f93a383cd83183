"""``python -m channelhub`` is the ``channelhub`` command."""

from channelhub.cli import app

app()
