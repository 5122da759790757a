"""``python -m sleeplm`` runs the same CLI as the ``sleeplm`` console script."""

from sleeplm.cli import main

main()
