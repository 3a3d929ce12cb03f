"""`python -m synthetic_pretraining.report`: see the package docstring."""
import sys

from synthetic_pretraining.report import main

sys.exit(main())  # --verbose: the traceback of a refused run
