"""`python -m synthetic_pretraining.report`: see the package docstring."""
import sys

from synthetic_pretraining.report import main

from synthetic_pretraining import cli  # pylint: disable=wrong-import-position

sys.exit(cli.run(main))  # --verbose: the traceback of a refused run
